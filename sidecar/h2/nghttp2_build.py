"""Builds sidecar/h2/_nghttp2 (cffi, API mode): nghttp2_shim.c against the system's libnghttp2.

At install time through setup.py's `cffi_modules` (needs a C compiler and libnghttp2-dev); by hand, in place:
`python3 sidecar/h2/nghttp2_build.py`. Without it the sidecar falls back to the pure-Python `h2` (codec.py).
"""

from __future__ import annotations

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
ffibuilder = FFI()
ffibuilder.cdef("""
typedef struct shim { int32_t *ev; size_t ev_len; size_t ev_delivered; char *buf; size_t buf_len; uint8_t *out; size_t out_len; uint32_t term;
                     char why[160]; ...; } shim;
shim *shim_new(int server);
void shim_del(shim *sh);
int shim_recv(shim *sh, const char *data, size_t len);
int shim_send(shim *sh);
int shim_data(shim *sh, int32_t sid, const char *data, size_t len, int end);
int32_t shim_headers(shim *sh, int32_t sid, const char *nv, size_t len, int end);
int32_t shim_window(shim *sh, int32_t sid);
int shim_consume(shim *sh, int32_t sid, size_t n);
int shim_reset(shim *sh, int32_t sid, uint32_t code);
int shim_settings(shim *sh, int32_t window, int32_t max_streams, int32_t push, int32_t conn_window);
int shim_upgrade(shim *sh, const char *settings, size_t len);
int shim_goaway(shim *sh, int32_t last_sid, uint32_t code, const char *data, size_t len);
int32_t shim_last_stream(shim *sh);
uint32_t shim_remote_max_streams(shim *sh);
int shim_want_read(shim *sh);
const char *shim_strerror(int code);
const char *shim_version(void);
""")
ffibuilder.set_source(
    "sidecar.h2._nghttp2",
    (HERE / "nghttp2_shim.c").read_text(),
    libraries=["nghttp2"],
    extra_compile_args=["-O2"],
)

if __name__ == "__main__":
    import os

    os.chdir(HERE.parents[1])  # the module lands in sidecar/h2/ (its package path) under the repository root
    ffibuilder.compile(tmpdir=".", verbose=False)

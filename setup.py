"""Optional native builds: the sidecar's HTTP/1 head scanner (sidecar/http1/heads.c, plain C API; built by
default, MESHD_NATIVE_HEADS=0 skips it; a failed build warns and the sidecar uses simple.py's regular
expressions; in place: `python3 setup.py build_ext --inplace`), its HTTP/2 codec on nghttp2 (cffi,
sidecar/h2/nghttp2_build.py; built by default, needs a C compiler, Python's headers and libnghttp2-dev; MESHD_NGHTTP2=0 skips it; a failed build
warns and the sidecar uses the pure-Python h2), and the hot path with mypyc; everything else is in
pyproject.toml.

`MESHD_MYPYC=1 pip install [-e] .` compiles the modules in HOT (mypy, which ships mypyc, is then added to the
build requirements); without it, or when mypyc, the C compiler or the build fails, the package is pure Python
(a warning says why). The compiled modules behave the same: the .py files stay the source of truth.
Editable installs put the .so files beside the .py files: after editing one, reinstall (or `MESHD_MYPYC=0`
reinstall, or delete sidecar/*.so) or the stale compiled module keeps being imported.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HOT = [
    "sidecar/proxy.py",
    "sidecar/accept.py",
    "sidecar/http1/client.py",
    "sidecar/http1/exchange.py",
    "sidecar/http1/upstream.py",
    "sidecar/http1/wire.py",
    "sidecar/http1/simple.py",
    "sidecar/balancer.py",
    "sidecar/services.py",
    "sidecar/retry.py",
    "sidecar/outlier.py",
    "sidecar/http.py",
    "sidecar/config.py",
]
NGHTTP2 = "sidecar.h2._nghttp2"
WANTED = os.environ.get("MESHD_MYPYC", "0").strip().lower() in ("1", "true", "yes", "on")


def warn(why: str) -> None:
    print(f"meshd: WARNING: the sidecar stays pure Python (not compiled with mypyc): {why}", file=sys.stderr)


class OptionalBuildExt(build_ext):
    """mypyc's modules all or nothing: if one fails to build, remove them and stay pure Python. The nghttp2
    codec on its own: if it fails, the sidecar uses the pure-Python h2."""

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        if ext.name != NGHTTP2:
            super().build_extension(ext)  # (the head scanner is optional=True: a failure only warns)
            return
        try:
            super().build_extension(ext)
        except Exception as e:  # noqa: BLE001 - CompileError, LinkError, missing compiler or headers, ...
            print(f"meshd: WARNING: no native HTTP/2 codec (the sidecar uses the pure-Python h2): "
                  f"{type(e).__name__}: {e}", file=sys.stderr)  # fmt: skip
            self.extensions.remove(ext)  # (the last one: nothing to copy in place, no output)

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # noqa: BLE001 - CompileError, LinkError, missing compiler, ...
            warn(f"{type(e).__name__}: {e}")
            for out in self.get_outputs():
                if "_nghttp2" in Path(out).name or "_heads" in Path(out).name:
                    continue
                Path(out).unlink(missing_ok=True)
                if self.inplace:
                    rel = os.path.relpath(out, self.build_lib)
                    Path(rel).unlink(missing_ok=True)


def remove_stale_native() -> None:
    """A pure build leaves no compiled module of an earlier MESHD_MYPYC=1 editable install in the tree."""
    here = Path(__file__).resolve().parent
    stale = [p for mod in HOT for p in (here / mod).parent.glob(Path(mod).stem + ".*.so")]
    stale += list(here.glob("sidecar_native__mypyc.*.so"))
    for p in stale:
        print(f"meshd: removing the compiled {p.name} (MESHD_MYPYC is not 1)", file=sys.stderr)
        p.unlink(missing_ok=True)


def native_modules() -> list:
    if not WANTED:
        remove_stale_native()
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as e:
        if not set(sys.argv[1:2]) & {"egg_info", "dist_info"}:  # pip asks for the requirements first
            warn(f"mypyc is not installed ({e})")
        return []
    try:
        return mypycify(HOT, opt_level="3", group_name="sidecar_native")
    except BaseException as e:  # noqa: BLE001 - mypyc exits (SystemExit) on type errors
        warn(f"mypyc failed: {type(e).__name__}: {e}")
        return []


def heads_module() -> list:
    """The HTTP/1 head scanner (C API, no library), unless MESHD_NATIVE_HEADS=0."""
    if os.environ.get("MESHD_NATIVE_HEADS", "1").strip().lower() in ("0", "false", "no", "off"):
        return []
    # optional: a failed build only warns (distutils) and the sidecar uses simple.py's regular expressions
    return [Extension("sidecar.http1._heads", ["sidecar/http1/heads.c"], extra_compile_args=["-O2"],
                      optional=True)]  # fmt: skip


def nghttp2_module() -> list:
    """The native HTTP/2 codec's extension (cffi API mode), unless MESHD_NGHTTP2=0 or cffi is missing."""
    if os.environ.get("MESHD_NGHTTP2", "1").strip().lower() in ("0", "false", "no", "off"):
        return []
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here / "sidecar" / "h2"))
    try:
        import nghttp2_build
    except ImportError as e:
        print(f"meshd: WARNING: no native HTTP/2 codec (cffi: {e})", file=sys.stderr)
        return []
    finally:
        sys.path.pop(0)
    return [nghttp2_build.ffibuilder.distutils_extension(tmpdir=str(here / "build" / "cffi"))]


setup(
    ext_modules=native_modules() + heads_module() + nghttp2_module(),  # (nghttp2 last: see OptionalBuildExt)
    cmdclass={"build_ext": OptionalBuildExt},
    setup_requires=["mypy>=1.10"] if WANTED else [],
)

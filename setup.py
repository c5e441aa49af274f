"""Native builds: the sidecar's hot path compiled with mypyc, its HTTP/1 head scanner (sidecar/http1/heads.c,
plain C API; MESHD_NATIVE_HEADS=0 skips it; a failed build warns and the sidecar uses simple.py's regular
expressions) and its HTTP/2 codec on nghttp2 (cffi, sidecar/h2/nghttp2_build.py; needs libnghttp2-dev;
MESHD_NGHTTP2=0 skips it; a failed build warns and the sidecar uses the pure-Python h2). All three need a C
compiler and Python's headers; everything else is in pyproject.toml. In place: `python3 setup.py build_ext
--inplace`.

`pip install [-e] .` compiles the modules in HOT with mypyc (mypy, which ships mypyc, is then a build
requirement: setuptools' PEP 517 backend returns setup_requires from get_requires_for_build_*);
`MESHD_MYPYC=0` opts out. When mypyc, the C compiler or the build fails, the package is pure Python (a
one-line warning says why; pip shows it with -v, the sidecar logs it at start). The .py files stay the source
of truth: the build records each compiled source's SHA-256 in sidecar/_compiled.json, and sidecar/compiled.py
imports every HOT module from its .py (with a warning) when one no longer matches, so an edited module of an
editable install never runs its stale compiled build.
"""

from __future__ import annotations

import hashlib
import json
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
RECORD = Path("sidecar") / "_compiled.json"  # read by sidecar/compiled.py
WANTED = os.environ.get("MESHD_MYPYC", "1").strip().lower() not in ("0", "false", "no", "off")
WHY = "MESHD_MYPYC=0" if not WANTED else ""  # why the hot path stays pure Python, if it does
MYPYC_NAMES: set[str] = set()  # the mypyc extensions' names (the group library and a shim per module)
SOURCES: dict[str, str] = {}  # module -> SHA-256 of the source mypyc compiled


def warn(why: str) -> None:
    global WHY
    WHY = why
    print(f"meshd: WARNING: the sidecar stays pure Python (not compiled with mypyc): {why}", file=sys.stderr)


class OptionalBuildExt(build_ext):
    """mypyc's modules all or nothing: if one fails to build, the others are dropped and the hot path stays
    pure Python; the head scanner and the nghttp2 codec are built regardless. The nghttp2 codec on its own: if it
    fails, the sidecar uses the pure-Python h2. Writes the build record (RECORD) in the build and, in place or
    editable, beside the sources."""

    mypyc_failed = ""

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        if ext.name in MYPYC_NAMES:
            if not self.mypyc_failed:
                try:
                    super().build_extension(ext)
                except Exception as e:  # noqa: BLE001 - CompileError, LinkError, missing compiler or headers
                    self.mypyc_failed = f"{type(e).__name__}: {str(e)[:200]}"  # (not the whole gcc command)
                    warn(self.mypyc_failed)
            return
        if ext.name != NGHTTP2:
            super().build_extension(ext)  # (the head scanner is optional=True: a failure only warns)
            return
        try:
            super().build_extension(ext)
        except Exception as e:  # noqa: BLE001 - CompileError, LinkError, missing compiler or headers, ...
            print(f"meshd: WARNING: no native HTTP/2 codec (the sidecar uses the pure-Python h2): "
                  f"{type(e).__name__}: {e}", file=sys.stderr)  # fmt: skip
            self.extensions.remove(ext)  # (the last one: nothing to copy in place, no output)

    def build_extensions(self) -> None:
        super().build_extensions()
        if self.mypyc_failed:  # none of them is copied in place or installed
            for ext in [e for e in self.extensions if e.name in MYPYC_NAMES]:
                Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
                self.extensions.remove(ext)

    def run(self) -> None:
        in_place = bool(self.inplace or getattr(self, "editable_mode", False))
        super().run()
        compiled = bool(MYPYC_NAMES) and not self.mypyc_failed
        if not compiled:
            remove_stale_native()  # (an earlier compiled build's, in place)
        record = json.dumps({"modules": SOURCES} if compiled else {"why": WHY or "not compiled"}, indent=1)
        here = Path(__file__).resolve().parent
        targets = [Path(self.build_lib) / RECORD] + ([here / RECORD] if in_place else [])
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(record + "\n")


def remove_stale_native() -> None:
    """A pure build leaves no compiled module of an earlier editable install in the tree."""
    here = Path(__file__).resolve().parent
    stale = [p for mod in HOT for p in (here / mod).parent.glob(Path(mod).stem + ".*.so")]
    stale += list(here.glob("sidecar_native__mypyc.*.so"))
    for p in stale:
        print(f"meshd: removing the compiled {p.name} (the hot path is not compiled: {WHY})", file=sys.stderr)
        p.unlink(missing_ok=True)


def native_modules() -> list:
    if not WANTED:
        remove_stale_native()
        return []
    if set(sys.argv[1:2]) & {"egg_info", "dist_info"}:  # pip asks for the requirements and metadata first
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as e:
        warn(f"mypyc is not installed ({e})")
        return []
    here = Path(__file__).resolve().parent
    for mod in HOT:  # (read before mypyc reads them: the record is of what was compiled)
        SOURCES[mod[: -len(".py")].replace("/", ".")] = hashlib.sha256((here / mod).read_bytes()).hexdigest()
    try:
        exts = mypycify(HOT, opt_level="3", group_name="sidecar_native")
    except BaseException as e:  # noqa: BLE001 - mypyc exits (SystemExit) on type errors
        warn(f"mypyc failed: {type(e).__name__}: {e}")
        return []
    MYPYC_NAMES.update(ext.name for ext in exts)
    return exts


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

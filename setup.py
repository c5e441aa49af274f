"""Optional native build of the sidecar's hot path with mypyc; everything else is in pyproject.toml.

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

from setuptools import setup
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
WANTED = os.environ.get("MESHD_MYPYC", "0").strip().lower() in ("1", "true", "yes", "on")


def warn(why: str) -> None:
    print(f"meshd: WARNING: the sidecar stays pure Python (not compiled with mypyc): {why}", file=sys.stderr)


class OptionalBuildExt(build_ext):
    """All or nothing: if any extension fails to build, remove what was built and stay pure Python."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # noqa: BLE001 - CompileError, LinkError, missing compiler, ...
            warn(f"{type(e).__name__}: {e}")
            for out in self.get_outputs():
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


setup(
    ext_modules=native_modules(),
    cmdclass={"build_ext": OptionalBuildExt},
    setup_requires=["mypy>=1.10"] if WANTED else [],
)

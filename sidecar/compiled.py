"""Which build of the sidecar's hot path runs: the mypyc-compiled modules or their .py sources.

`pip install [-e] .` compiles the modules in setup.py's HOT with mypyc (one group library,
sidecar_native__mypyc.*.so beside the `sidecar` package, plus a small shim `<module>.*.so` beside each
module's .py) and records the SHA-256 of each source it compiled in `sidecar/_compiled.json`. Python's
import system prefers an extension module to the .py beside it, so in an editable install an edited .py
would be shadowed by its stale compiled build. Before any of them is imported (sidecar/__init__.py), the
record is checked: if a compiled module's source no longer matches, or there is no record, EVERY compiled
module is imported from its .py instead (with one warning). All or nothing: compiled modules call each other
natively (C calls and native classes inside the group), so a mix of source and compiled would still run
stale code. `MESHD_MYPYC=0` in the environment imports the sources on purpose (no warning).

This module is not compiled itself (it decides which build runs), and stays free of the sidecar's imports.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from types import ModuleType

RECORD = "_compiled.json"  # {"modules": {"sidecar.proxy": "<sha256 of proxy.py>", ...}} or {"why": ...}
GROUP = "sidecar_native__mypyc"  # setup.py's group_name "sidecar_native": the compiled code of every module
OFF = ("0", "false", "no", "off")

# What runs, for the sidecar's startup log line: "compiled" or "pure Python (<why>)".
build = "pure Python"


def source_hash(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def decide(
    compiled: Sequence[str], record: Mapping[str, object] | None, hashes: Mapping[str, str | None],
    *, opted_out: bool, group_found: bool = True,
) -> tuple[bool, str, bool]:  # fmt: skip
    """-> (import the sources, why, warn). `compiled`: modules with an extension module beside their .py;
    `hashes`: the current SHA-256 of each compiled module's .py (None: unreadable); `group_found`: the group
    library (GROUP) is importable."""
    if not compiled:
        why = record.get("why") if record else None
        return False, str(why) if why else "no compiled modules", False
    if opted_out:
        return True, "MESHD_MYPYC=0", False
    modules = record.get("modules") if record else None
    if not isinstance(modules, dict):
        return True, "the compiled modules have no build record (sidecar/_compiled.json)", True
    if not group_found:
        return True, f"the compiled modules' library {GROUP} is missing", True
    unrecorded = sorted(set(compiled) ^ set(modules))
    if unrecorded:
        return True, f"{', '.join(unrecorded)} compiled or recorded, not both", True
    changed = sorted(m for m in compiled if hashes.get(m) != modules[m])
    if changed:
        return True, f"{', '.join(changed)} changed since compiled", True
    return False, "compiled", False


class SourceFirst(importlib.abc.MetaPathFinder):
    """Finds the listed modules' .py files before the path finder finds their extension modules."""

    def __init__(self, sources: Mapping[str, str]) -> None:
        self.sources = dict(sources)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        source = self.sources.get(fullname)
        return importlib.util.spec_from_file_location(fullname, source) if source else None


def compiled_modules(package_dir: str, package: str) -> dict[str, str]:
    """Modules under the package with an extension module beside their .py -> that .py's path."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    found: dict[str, str] = {}
    for root, dirs, files in os.walk(package_dir):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        names = set(files)
        for name in files:
            suffix = next((s for s in suffixes if name.endswith(s)), None)
            if suffix is None:
                continue
            stem = name[: -len(suffix)]
            if stem + ".py" in names:
                rel = os.path.relpath(os.path.join(root, stem), package_dir)
                found[".".join([package, *rel.split(os.sep)])] = os.path.join(root, stem + ".py")
    return found


def choose(package_dir: str, package: str = "sidecar") -> None:
    """Called by sidecar/__init__.py before any other sidecar module is imported."""
    global build
    sources = compiled_modules(package_dir, package)
    record: dict[str, object] | None = None
    try:
        with open(os.path.join(package_dir, RECORD)) as f:
            loaded = json.load(f)
        record = loaded if isinstance(loaded, dict) else None
    except (OSError, ValueError):
        pass
    hashes: dict[str, str | None] = {}
    opted_out = os.environ.get("MESHD_MYPYC", "").strip().lower() in OFF
    if sources and not opted_out:
        for name, path in sources.items():
            try:
                hashes[name] = source_hash(path)
            except OSError:
                hashes[name] = None
    group_found = bool(sources) and not opted_out and importlib.util.find_spec(GROUP) is not None
    use_sources, why, warn = decide(sorted(sources), record, hashes, opted_out=opted_out, group_found=group_found)
    build = f"pure Python ({why})" if use_sources or why != "compiled" else "compiled (mypyc)"
    if not use_sources:
        return
    if warn:
        warnings.warn(
            f"meshd sidecar: {why}: running the pure-Python sources, not the stale compiled build "
            "(rebuild with `pip install -e .`, or MESHD_MYPYC=0 to silence this)",
            RuntimeWarning, stacklevel=3,
        )  # fmt: skip
    sys.meta_path.insert(0, SourceFirst(sources))

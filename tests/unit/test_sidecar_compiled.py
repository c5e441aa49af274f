"""Which build of the sidecar's hot path runs (sidecar/compiled.py): the decision, and the import hook against
the real compiled build in a copy of the package (skipped where the hot path is not compiled)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sidecar
from sidecar import compiled

RECORD = {"modules": {"sidecar.a": "h1", "sidecar.http1.b": "h2"}}
HASHES = {"sidecar.a": "h1", "sidecar.http1.b": "h2"}
BOTH = ["sidecar.a", "sidecar.http1.b"]


@pytest.mark.parametrize(
    ("modules", "record", "hashes", "opted_out", "expected"),
    [
        (BOTH, RECORD, HASHES, False, (False, "compiled", False)),
        (BOTH, RECORD, {**HASHES, "sidecar.http1.b": "edited"}, False,
         (True, "sidecar.http1.b changed since compiled", True)),
        (BOTH, RECORD, {**HASHES, "sidecar.a": None}, False,
         (True, "sidecar.a changed since compiled", True)),
        (BOTH, None, HASHES, False,
         (True, "the compiled modules have no build record (sidecar/_compiled.json)", True)),
        (BOTH, {"why": "MESHD_MYPYC=0"}, HASHES, False,
         (True, "the compiled modules have no build record (sidecar/_compiled.json)", True)),
        (BOTH + ["sidecar.c"], RECORD, HASHES, False,
         (True, "sidecar.c compiled or recorded, not both", True)),
        (["sidecar.a"], RECORD, HASHES, False,  # (a shim deleted: its code is still in the group library)
         (True, "sidecar.http1.b compiled or recorded, not both", True)),
        (BOTH, RECORD, {}, True, (True, "MESHD_MYPYC=0", False)),
        ([], {"why": "mypyc failed: x"}, {}, False, (False, "mypyc failed: x", False)),
        ([], None, {}, False, (False, "no compiled modules", False)),
        ([], RECORD, {}, True, (False, "no compiled modules", False)),  # (a removed build's record)
    ],
)  # fmt: skip
def test_decide(modules, record, hashes, opted_out, expected):
    assert compiled.decide(modules, record, hashes, opted_out=opted_out) == expected


def test_decide_without_the_group_library():
    assert compiled.decide(BOTH, RECORD, HASHES, opted_out=False, group_found=False) == (
        True, "the compiled modules' library sidecar_native__mypyc is missing", True)


ROOT = Path(sidecar.__file__).resolve().parent.parent
GROUP = glob.glob(str(ROOT / "sidecar_native__mypyc.*"))
needs_build = pytest.mark.skipif(
    not GROUP or not compiled.compiled_modules(str(ROOT / "sidecar"), "sidecar"),
    reason="the hot path is not compiled here (pip install -e . without a C compiler or with MESHD_MYPYC=0)",
)
PROBE = ("import sidecar.proxy, sidecar.http1.wire as w; from sidecar import compiled; "
         "print(compiled.build); print(sidecar.proxy.__file__); print(w.__file__)")


def run_copy(tmp_path: Path, edit: str | None, env: dict[str, str] | None = None) -> tuple[list[str], str]:
    copy = tmp_path / "tree"
    shutil.copytree(ROOT / "sidecar", copy / "sidecar", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(GROUP[0], copy)
    if edit:
        with open(copy / edit, "a") as f:
            f.write("\n# edited after the build\n")
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path,
        env={**{k: v for k, v in os.environ.items() if k != "MESHD_MYPYC"}, **(env or {}),
             "PYTHONPATH": f"{copy}{os.pathsep}{ROOT}"},
    )  # fmt: skip
    return proc.stdout.split("\n"), proc.stderr


@needs_build
def test_the_compiled_build_runs_when_its_sources_are_unchanged(tmp_path: Path):
    (build, proxy, wire, _), stderr = run_copy(tmp_path, None)
    assert build == "compiled (mypyc)" and proxy.startswith(str(tmp_path)) and not proxy.endswith(".py")
    assert not wire.endswith(".py")
    assert "RuntimeWarning" not in stderr


@needs_build
def test_an_edited_module_runs_from_source_and_so_does_every_other_compiled_one(tmp_path: Path):
    (build, proxy, wire, _), stderr = run_copy(tmp_path, "sidecar/http1/wire.py")
    assert build == "pure Python (sidecar.http1.wire changed since compiled)"
    assert proxy == str(tmp_path / "tree" / "sidecar" / "proxy.py")  # (all or nothing: it calls wire natively)
    assert wire == str(tmp_path / "tree" / "sidecar" / "http1" / "wire.py")
    assert stderr.count("RuntimeWarning: meshd sidecar: sidecar.http1.wire changed since compiled") == 1


@needs_build
def test_meshd_mypyc_0_runs_the_sources_without_a_warning(tmp_path: Path):
    (build, proxy, _, _), stderr = run_copy(tmp_path, None, {"MESHD_MYPYC": "0"})
    assert build == "pure Python (MESHD_MYPYC=0)" and proxy.endswith("proxy.py") and "Warning" not in stderr

"""hostPath type checks as the kubelet makes them, and the pvc, pv and sc tables as kubectl prints them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meshd.api.columns import access_modes, pv_row, pvc_row, storageclass_row
from meshd.controller.volumes.hostpath import decide, prepare


@pytest.mark.parametrize(("type_", "found", "decision"), [
    ("", None, "create-directory"),
    ("", "file", "ok"),
    ("DirectoryOrCreate", None, "create-directory"),
    ("DirectoryOrCreate", "directory", "ok"),
    ("DirectoryOrCreate", "file", "hostPath type check failed: /p is not a directory"),
    ("Directory", None, "hostPath type check failed: /p is not a directory"),
    ("Directory", "directory", "ok"),
    ("FileOrCreate", None, "create-file"),
    ("FileOrCreate", "directory", "hostPath type check failed: /p is not a file"),
    ("File", "file", "ok"),
    ("File", None, "hostPath type check failed: /p is not a file"),
    ("Socket", "file", "hostPath type check failed: /p is not a socket file"),
    ("Socket", "socket", "ok"),
    ("CharDevice", "char", "ok"),
    ("CharDevice", "block", "hostPath type check failed: /p is not a character device"),
    ("BlockDevice", "char", "hostPath type check failed: /p is not a block device"),
])
def test_decide(type_: str, found, decision: str) -> None:
    assert decide("/p", type_, found) == decision


def test_prepare_creates_what_or_create_asks_for(tmp_path) -> None:
    assert prepare(str(tmp_path / "a" / "b"), "DirectoryOrCreate") is None
    assert (tmp_path / "a" / "b").is_dir()
    assert prepare(str(tmp_path / "f"), "FileOrCreate") is None
    assert (tmp_path / "f").is_file()
    assert prepare(str(tmp_path / "f"), "Directory") == f"hostPath type check failed: {tmp_path / 'f'} is not a directory"
    assert prepare("/dev/null", "CharDevice") is None
    assert "cannot create" in (prepare(str(tmp_path / "no" / "file"), "FileOrCreate") or "")


NOW = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)
CREATED = "2026-01-01T00:00:00Z"


def test_tables() -> None:
    assert access_modes(["ReadOnlyMany", "ReadWriteOnce"]) == "RWO,ROX"
    pvc = {"metadata": {"name": "data", "creationTimestamp": CREATED},
           "spec": {"volumeName": "pvc-1", "storageClassName": "local"},
           "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}}
    assert pvc_row(pvc, NOW, False) == ["data", "Bound", "pvc-1", "1Gi", "RWO", "local", "10m"]
    pvc["metadata"]["deletionTimestamp"] = CREATED
    assert pvc_row(pvc, NOW, True)[1::6] == ["Terminating", "Filesystem"]
    pv = {"metadata": {"name": "pvc-1", "creationTimestamp": CREATED},
          "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOncePod"],
                   "persistentVolumeReclaimPolicy": "Retain", "claimRef": {"namespace": "default", "name": "data"},
                   "storageClassName": "keep"}, "status": {"phase": "Released"}}
    assert pv_row(pv, NOW, False) == ["pvc-1", "1Gi", "RWOP", "Retain", "Released", "default/data", "keep", "", "10m"]
    sc = {"metadata": {"name": "local", "creationTimestamp": CREATED,
                       "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
          "provisioner": "meshd.io/local", "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}
    assert storageclass_row(sc, NOW, False) == ["local (default)", "meshd.io/local", "Delete", "Immediate", "false",
                                               "10m"]

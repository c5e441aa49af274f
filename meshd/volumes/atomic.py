"""The kubelet's atomic writer: a volume's files live in a timestamped directory `..2026_12_05_06_00_00.123`,
`..data` is a symlink to it, and each top-level name is a symlink into `..data`. An update writes a new
directory and swaps `..data` with one rename(), so a reader sees the old files or the new ones, never a mix."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from meshd.volumes.payload import File

DATA = "..data"
_DATA_TMP = "..data_tmp"


def current_dir(target: Path) -> str | None:
    """The timestamped directory `..data` names, or None."""
    try:
        return os.readlink(target / DATA)
    except OSError:
        return None


def read_payload(directory: Path) -> dict[str, File]:
    out = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = Path(root) / name
            out[str(path.relative_to(directory))] = File(path.read_bytes(), path.stat().st_mode & 0o777)
    return out


def write_atomically(target: Path, files: Mapping[str, File], *, dir_mode: int = 0o755) -> bool:
    """Makes `target` hold exactly `files`; False when it did already (nothing is written)."""
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(target, dir_mode)
    old = current_dir(target)
    if old is not None and read_payload(target / old) == dict(files):
        return False
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
    new = Path(tempfile.mkdtemp(prefix=stamp, dir=target))
    os.chmod(new, dir_mode)
    for rel, file in files.items():
        path = new / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=dir_mode)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(file.data)
        os.chmod(path, file.mode)
    link = target / _DATA_TMP
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(new.name, link)
    os.rename(link, target / DATA)  # the swap: atomic
    top = {rel.split("/", 1)[0] for rel in files}
    for name in top:
        visible = target / name
        if not visible.is_symlink():
            if visible.is_dir():
                shutil.rmtree(visible)
            elif visible.exists():
                visible.unlink()
            os.symlink(f"{DATA}/{name}", visible)
    for name in os.listdir(target):
        if not name.startswith("..") and name not in top:
            (target / name).unlink()
    if old is not None and old != new.name:
        shutil.rmtree(target / old, ignore_errors=True)
    return True

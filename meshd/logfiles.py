"""Container and sidecar log files capped and rotated as the kubelet does (`containerLogMaxSize` 10 MiB,
`containerLogMaxFiles` 5): `x.log` is the live file, `x.log.1` ... `x.log.4` the older ones.

A writer holds its file open with O_APPEND (a child process's stdout), so rotation copies the live file and
truncates it in place (logrotate's `copytruncate`): the writer's next write lands at the new, empty end.
Blocking: call these from a thread.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

MAX_SIZE = 10 * 1024 * 1024
MAX_FILES = 5


def rotated_names(path: Path, max_files: int = MAX_FILES) -> list[Path]:
    """The older files of `path`, newest first: x.log.1 ... x.log.(max_files - 1)."""
    return [path.with_name(f"{path.name}.{n}") for n in range(1, max_files)]


def rotate_log(path: Path, *, max_size: int = MAX_SIZE, max_files: int = MAX_FILES) -> bool:
    """Rotates `path` if it holds `max_size` bytes or more; True when it did. The oldest file is dropped."""
    try:
        if os.stat(path).st_size < max_size:
            return False
    except FileNotFoundError:
        return False
    older = rotated_names(path, max_files)
    if not older:  # one file only: just start it again
        os.truncate(path, 0)
        return True
    older[-1].unlink(missing_ok=True)
    for newer, elder in zip(reversed(older[:-1]), reversed(older[1:])):
        if newer.exists():
            newer.rename(elder)
    shutil.copyfile(path, older[0])
    os.truncate(path, 0)
    return True


def remove_logs(path: Path, max_files: int = MAX_FILES) -> None:
    """Removes the live file and its rotated ones."""
    for name in (path, *rotated_names(path, max_files)):
        name.unlink(missing_ok=True)

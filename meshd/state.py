"""The state dir and small files in it written atomically (temp file, fsync, rename). Desired state itself lives
in the object store (meshd/store, STATE/store.db)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

TOKEN_FILE = "token"  # the API's bearer token (0600)
SOCKET_FILE = "api.sock"  # the API's Unix socket (0600: its owner's)


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "meshd"


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)

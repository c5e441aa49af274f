"""hostPath volumes: the kubelet's type checks (`type: Directory`, `FileOrCreate`, ...). `decide` is the pure
decision from what is at the path; `prepare` looks and creates what an *OrCreate type (or "", as the container
runtime does) asks for."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Literal

Found = Literal["directory", "file", "socket", "char", "block", "other"] | None  # None: nothing there
Decision = Literal["ok", "create-directory", "create-file"] | str  # anything else: the error

_WANTED: dict[str, tuple[str, str]] = {  # type -> (what must be there, how the kubelet says it is not)
    "Directory": ("directory", "is not a directory"),
    "DirectoryOrCreate": ("directory", "is not a directory"),
    "File": ("file", "is not a file"),
    "FileOrCreate": ("file", "is not a file"),
    "Socket": ("socket", "is not a socket file"),
    "CharDevice": ("char", "is not a character device"),
    "BlockDevice": ("block", "is not a block device"),
}


def decide(path: str, type_: str, found: Found) -> Decision:
    """What to do for a hostPath of this type given what is at the path: "ok", create something, or the
    message the kubelet's FailedMount event carries."""
    if type_ == "":
        return "create-directory" if found is None else "ok"  # no check; the runtime makes a missing directory
    wanted, problem = _WANTED[type_]
    if found is None and type_ == "DirectoryOrCreate":
        return "create-directory"
    if found is None and type_ == "FileOrCreate":
        return "create-file"
    if found != wanted:
        return f"hostPath type check failed: {path} {problem}"
    return "ok"


def found_at(path: str) -> Found:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError:
        return "other"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "char"
    if stat.S_ISBLK(mode):
        return "block"
    return "other"


def prepare(path: str, type_: str) -> str | None:
    """Checks (and creates) the hostPath; returns the error message, or None when it can be mounted. Blocking."""
    decision = decide(path, type_, found_at(path))
    try:
        if decision == "create-directory":
            Path(path).mkdir(mode=0o755, parents=True, exist_ok=True)
        elif decision == "create-file":
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)  # the parent must exist, as for the kubelet
            os.close(fd)
        elif decision != "ok":
            return decision
    except OSError as error:
        return f"hostPath {path}: cannot create it ({error.strerror})"
    return None


__all__ = ["decide", "found_at", "prepare"]

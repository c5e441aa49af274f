"""Manifest sources for `-f`: files, directories (*.yaml, *.yml, *.json) and stdin (`-`).

`read_manifests` is shared with `meshd up` (the agent applies what it returns, file by file).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN_SOURCE = "<stdin>"


class InputError(OSError):
    """A -f source that cannot be read (an OSError, so callers that handle file errors handle it too)."""


def expand_sources(sources: Iterable[str], *, recursive: bool = False) -> list[str]:
    """The files named by -f, in order: a directory yields its manifests sorted by name; "-" stays "-"."""
    files: list[str] = []
    for source in sources:
        if source == "-":
            files.append(source)
            continue
        path = Path(source)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            found = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix in MANIFEST_SUFFIXES)
            files.extend(str(p) for p in found)
        elif path.exists():
            files.append(source)
        else:
            raise InputError(f'the path "{source}" does not exist')
    if not files:
        raise InputError("no objects passed (no manifest files found)")
    return files


def read_manifests(
    sources: Iterable[str], *, recursive: bool = False, read_stdin: Callable[[], str] | None = None
) -> list[tuple[str, str]]:
    """(YAML text, source name) per non-empty file named by -f; the source is the path or "<stdin>"."""
    read_stdin = read_stdin or sys.stdin.read
    out = []
    for name in expand_sources(sources, recursive=recursive):
        try:
            text = read_stdin() if name == "-" else Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read {name}: {exc}") from None
        if text.strip():
            out.append((text, STDIN_SOURCE if name == "-" else name))
    if not out:
        raise InputError("no objects passed (the manifests are empty)")
    return out

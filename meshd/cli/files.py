"""Reads `-f` arguments: files, directories (every *.yaml, *.yml, *.json in name order) and `-` (stdin)."""

from __future__ import annotations

import sys
from pathlib import Path

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def read_manifests(paths: list[str]) -> list[tuple[str, str]]:
    """(text, source name) for every manifest file named; raises OSError with the path when one is unreadable."""
    out: list[tuple[str, str]] = []
    for path in paths:
        if path == "-":
            out.append((sys.stdin.read(), "<stdin>"))
            continue
        p = Path(path)
        if p.is_dir():
            for child in sorted(p.iterdir()):
                if child.suffix in MANIFEST_SUFFIXES and child.is_file():
                    out.append((child.read_text(), str(child)))
        else:
            out.append((p.read_text(), str(p)))
    return out

"""Manifest sources for `-f`: files, directories (*.yaml, *.yml, *.json) and stdin (`-`)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


class InputError(Exception):
    """A -f source that cannot be read."""


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
        raise InputError("no objects passed to apply (no manifest files found)")
    return files


def read_manifests(files: list[str], *, read_stdin: Callable[[], str]) -> str:
    """One multi-document YAML stream of every file (JSON is YAML too), separated by `---`."""
    texts = []
    for name in files:
        try:
            text = read_stdin() if name == "-" else Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read {name}: {exc}") from None
        if text.strip():
            texts.append(text if text.endswith("\n") else text + "\n")
    if not texts:
        raise InputError("no objects passed (the manifests are empty)")
    stream = texts[0]
    for text in texts[1:]:
        stream += text if text.lstrip().startswith("---") else "---\n" + text
    return stream

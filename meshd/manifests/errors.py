"""ManifestError and field-path formatting: every problem names its document and its field."""

from __future__ import annotations

import re
from collections.abc import Sequence

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")

PathPart = str | int
FieldPath = tuple[PathPart, ...]


def format_path(path: Sequence[PathPart]) -> str:
    """("spec", "volumes", 0, "hostPath") -> "spec.volumes[0].hostPath"; odd keys in brackets:
    ("metadata", "labels", "app.kubernetes.io/name") -> "metadata.labels[app.kubernetes.io/name]"."""
    out = ""
    for part in path:
        if isinstance(part, int) or not _PLAIN_KEY.match(part):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


class ManifestError(ValueError):
    """A manifest meshd cannot accept; str() names the source, document, object and field path."""

    def __init__(
        self,
        message: str,
        *,
        source: str = "<stdin>",
        document: int | None = None,
        item: int | None = None,
        kind: str | None = None,
        name: str | None = None,
        path: FieldPath = (),
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.problem = message
        self.source = source
        self.document = document
        self.item = item
        self.kind = kind
        self.name = name
        self.path = path
        self.line = line
        self.column = column
        super().__init__(self._render())

    @property
    def field_path(self) -> str:
        return format_path(self.path)

    def _render(self) -> str:
        where = describe_document(self.source, self.document, self.item, self.kind, self.name)
        text = f"{where}: {self.field_path}: {self.problem}" if self.path else f"{where}: {self.problem}"
        if self.line is not None:
            text += f" (line {self.line})"
        return text


def describe_document(
    source: str, document: int | None, item: int | None, kind: str | None, name: str | None
) -> str:
    """'deploy.yaml: document 2 (Deployment web)'; the parts that are unknown are left out."""
    text = source
    if document is not None:
        text += f": document {document}"
        if item is not None:
            text += f" item {item}"
    if kind and name:
        text += f" ({kind} {name})"
    elif kind:
        text += f" ({kind})"
    return text

"""Multi-document YAML -> JSON-like documents, with the line of every field kept for error messages."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from meshd.manifests.errors import FieldPath, ManifestError

_TAG = "tag:yaml.org,2002:"
_SCALARS = {f"{_TAG}{t}" for t in ("null", "bool", "int", "float", "str")}
MAX_NODES = 200_000  # after alias expansion: a "billion laughs" document fails here, not in memory
MAX_OBJECT_BYTES = 1536 * 1024  # an object, as JSON, after YAML aliases are expanded (Kubernetes' 1.5 MiB)
MAX_DOCUMENT_BYTES = 2 * MAX_OBJECT_BYTES  # a document while it is expanded (a v1 List holds several objects)
MAX_TEXT_BYTES = 8 * MAX_OBJECT_BYTES  # every document of one text, expanded


@dataclass(frozen=True)
class RawDocument:
    """One YAML document: its 1-based position in the stream, its data, and the line of each field."""

    index: int
    data: Any
    line: int
    lines: Mapping[FieldPath, int] = field(default_factory=dict, repr=False)
    texts: Mapping[FieldPath, str] = field(default_factory=dict, repr=False)  # as written, for non-strings


def parse_documents(text: str, *, source: str) -> list[RawDocument]:
    """Every document of `text` (empty ones included, data None); raises ManifestError on bad YAML."""
    if not isinstance(text, str):
        raise ManifestError(f"expected YAML text, got {type(text).__name__}", source=source)
    fast = getattr(yaml, "CSafeLoader", None)  # libyaml parses ~10x faster (2,000 Services: 0.15 s, not 1.5 s)
    if fast is not None:
        try:
            return _parse(text, fast, source=source)
        except ManifestError:
            pass  # the pure-Python parser's messages are the ones users (and tests) know
    return _parse(text, yaml.SafeLoader, source=source)


def _parse(text: str, loader_class: Any, *, source: str) -> list[RawDocument]:
    try:
        loader = loader_class(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise ManifestError(
            f"YAML syntax error at line {line}: character {exc.character:#06x} is not allowed", source=source
        ) from None
    documents: list[RawDocument] = []
    index = 0
    expanded = 0
    try:
        while loader.check_node():
            index += 1
            node = loader.get_node()
            if node is None:
                continue
            converter = _Converter(loader, source=source, document=index, budget=MAX_TEXT_BYTES - expanded)
            converter.lines[()] = node.start_mark.line + 1
            data = converter.convert(node, ())
            expanded += converter.size
            converter.check_object_sizes(data, node)
            documents.append(
                RawDocument(index, data, node.start_mark.line + 1, converter.lines, converter.texts)
            )
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ManifestError(f"YAML syntax error{where}: {problem}", source=source, document=index) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        problem = (
            f"character {exc.character:#06x} is not allowed" if isinstance(exc.character, int) else exc.reason
        )
        raise ManifestError(
            f"YAML syntax error at line {line}: {problem}", source=source, document=index
        ) from None
    except yaml.YAMLError as exc:
        message = " ".join(str(exc).split())
        raise ManifestError(f"YAML syntax error: {message}", source=source, document=index or None) from None
    except RecursionError:
        raise ManifestError("YAML nesting is too deep", source=source, document=index) from None
    finally:
        loader.dispose()
    return documents


class _Converter:
    """Turns a composed node tree into plain dicts/lists/scalars, as Kubernetes' YAML-to-JSON step does."""

    def __init__(self, loader: yaml.SafeLoader, *, source: str, document: int,
                 budget: int = MAX_TEXT_BYTES) -> None:
        self.loader = loader
        self.source = source
        self.document = document
        self.size = 0  # bytes of the document as JSON, roughly, after aliases are expanded
        self.limit = min(MAX_DOCUMENT_BYTES, budget)
        self.item_sizes: dict[int, int] = {}  # the size of each `items[i]` (the objects of a v1 List)
        self.lines: dict[FieldPath, int] = {}
        self.texts: dict[FieldPath, str] = {}
        self.count = 0
        self.active: set[int] = set()
        self.explicit: dict[int, int] = {}  # mapping node -> how many of its pairs the document wrote itself

    def fail(self, message: str, path: FieldPath, node: Node) -> ManifestError:
        return ManifestError(
            message, source=self.source, document=self.document, path=path, line=node.start_mark.line + 1
        )

    def grow(self, size: int, path: FieldPath, node: Node) -> None:
        self.size += size
        if self.size > self.limit:
            raise self.fail(f"document too large: more than {self.limit} bytes after YAML aliases are expanded "
                            f"(an object may have at most {MAX_OBJECT_BYTES} bytes, 1.5 MiB)", path, node)

    def check_object_sizes(self, data: Any, node: Node) -> None:
        """Each object (the document, or each item of a v1 List) within MAX_OBJECT_BYTES."""
        kind = data.get("kind") if isinstance(data, dict) else None
        if isinstance(kind, str) and kind.endswith("List") and isinstance(data.get("items"), list):
            sizes: dict[FieldPath, int] = {("items", i): size for i, size in self.item_sizes.items()}
        else:
            sizes = {(): self.size}
        for path, size in sizes.items():
            if size > MAX_OBJECT_BYTES:
                raise self.fail(f"object too large: {size} bytes after YAML aliases are expanded, over the "
                                f"limit of {MAX_OBJECT_BYTES} bytes (1.5 MiB)", path, node)

    def convert(self, node: Node, path: FieldPath) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(f"document too large (more than {MAX_NODES} values after aliases)", path, node)
        if len(path) == 2 and path[0] == "items" and isinstance(path[1], int):
            start = self.size
            try:
                return self._convert(node, path)
            finally:
                self.item_sizes[path[1]] = self.size - start
        return self._convert(node, path)

    def _convert(self, node: Node, path: FieldPath) -> Any:
        if isinstance(node, ScalarNode):
            self.grow(len(node.value) + 3, path, node)
            return self.scalar(node, path)
        if id(node) in self.active:
            raise self.fail("recursive YAML alias", path, node)
        self.active.add(id(node))
        self.grow(2, path, node)
        try:
            if isinstance(node, SequenceNode):
                if node.tag != f"{_TAG}seq":
                    raise self.fail(f"unsupported YAML tag {node.tag}", path, node)
                items = []
                for i, child in enumerate(node.value):
                    self.lines.setdefault(path + (i,), child.start_mark.line + 1)
                    items.append(self.convert(child, path + (i,)))
                return items
            if isinstance(node, MappingNode):
                return self.mapping(node, path)
            raise self.fail("unsupported YAML node", path, node)
        finally:
            self.active.discard(id(node))

    def mapping(self, node: MappingNode, path: FieldPath) -> dict[str, Any]:
        if node.tag != f"{_TAG}map":
            raise self.fail(f"unsupported YAML tag {node.tag}", path, node)
        if id(node) not in self.explicit:
            explicit = sum(1 for key_node, _ in node.value if key_node.tag != f"{_TAG}merge")
            self.loader.flatten_mapping(node)  # resolves "<<" merge keys: merged pairs come first
            self.explicit[id(node)] = explicit
        explicit_from = len(node.value) - self.explicit[id(node)]
        result: dict[str, Any] = {}
        written: set[str] = set()
        for i, (key_node, value_node) in enumerate(node.value):
            if not isinstance(key_node, ScalarNode):
                raise self.fail("a mapping key must be a string", path, key_node)
            key = self.key(key_node, path)
            self.grow(len(key) + 4, path, key_node)
            if i >= explicit_from:  # a merged key may be overridden, an explicit one only once
                if key in written:
                    raise self.fail(f"duplicate key {key!r}", path + (key,), key_node)
                written.add(key)
            self.lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = self.convert(value_node, path + (key,))
        return result

    def key(self, node: ScalarNode, path: FieldPath) -> str:
        value = self.scalar(node, path, record=False)
        if isinstance(value, bool):
            return "true" if value else "false"
        if value is None:
            raise self.fail("a mapping key must be a string, got null", path, node)
        return value if isinstance(value, str) else str(value)

    def scalar(self, node: ScalarNode, path: FieldPath, *, record: bool = True) -> Any:
        if node.tag == f"{_TAG}timestamp":
            return node.value  # as Kubernetes' YAML-to-JSON step: a timestamp stays text
        if node.tag not in _SCALARS:
            raise self.fail(f"unsupported YAML tag {node.tag}", path, node)
        if record and node.tag != f"{_TAG}str":
            self.texts[path] = node.value  # "yes" read as true: a message can show what was written
        construct: Callable[[yaml.SafeLoader, Node], Any] = self.loader.yaml_constructors[node.tag]
        try:
            return construct(self.loader, node)
        except (ValueError, TypeError, OverflowError) as exc:
            raise self.fail(
                f"bad {node.tag.removeprefix(_TAG)} value {node.value!r}: {exc}", path, node
            ) from None

"""The little of Kubernetes' protobuf encoding meshd reads: `kubectl create namespace` and `kubectl create job
--from=cronjob/NAME` send their object as `application/vnd.kubernetes.protobuf` whatever the server prefers.
The envelope (magic `k8s\\0`, then a runtime.Unknown: typeMeta, raw) and, in raw, the ObjectMeta fields a new
object carries (name, namespace, labels, annotations, ownerReferences); the spec is not read (see
meshd.api.writes for what stands in for it). Pure; anything else is a ValueError."""

from __future__ import annotations

import re
from typing import Any

from meshd.model.protowire import fields

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
ACCEPTED = re.compile(r"^/api/v1/namespaces$|^/apis/batch/v1/namespaces/[^/]+/jobs$")  # where meshd reads it
MAGIC = b"k8s\x00"


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ValueError("expected a string field")
    return value.decode()


def _entry(value: int | bytes) -> tuple[str, str]:
    found = {n: _text(v) for n, v in fields(value if isinstance(value, bytes) else b"")}
    return found.get(1, ""), found.get(2, "")


def _metadata(data: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for number, value in fields(data):
        if number in (1, 3) and value:  # proto2 writes an empty string too: that is no value
            meta["name" if number == 1 else "namespace"] = _text(value)
        elif number in (11, 12):
            key, text = _entry(value)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = text
        elif number == 13 and isinstance(value, bytes):
            meta.setdefault("ownerReferences", []).append(_owner(value))
    return meta


_OWNER_FIELDS = {1: "kind", 3: "name", 4: "uid", 5: "apiVersion", 6: "controller", 7: "blockOwnerDeletion"}


def _owner(data: bytes) -> dict[str, Any]:
    owner: dict[str, Any] = {}
    for number, value in fields(data):
        if number in _OWNER_FIELDS:
            owner[_OWNER_FIELDS[number]] = bool(value) if number in (6, 7) else _text(value)
    return owner


def decode_object(body: bytes) -> dict[str, Any]:
    """A protobuf-encoded object as the JSON-like dict of its apiVersion, kind and metadata."""
    if not body.startswith(MAGIC):
        raise ValueError("not a Kubernetes protobuf object (no k8s magic)")
    obj: dict[str, Any] = {}
    raw = b""
    for number, value in fields(body[len(MAGIC):]):
        if number == 1 and isinstance(value, bytes):
            for n, v in fields(value):
                obj["apiVersion" if n == 1 else "kind"] = _text(v)
        elif number == 2 and isinstance(value, bytes):
            raw = value
    for number, value in fields(raw):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _metadata(value)
    return obj


__all__ = ["ACCEPTED", "CONTENT_TYPE", "decode_object"]

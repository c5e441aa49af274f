"""Request bodies in Kubernetes' protobuf encoding, for the kinds kubectl's typed clients send that way
(`kubectl create secret|configmap` send `application/vnd.kubernetes.protobuf`): the `k8s\\0` envelope (a
runtime.Unknown), then the object's generated.proto message, decoded to the JSON shape the API takes (pure).

Only v1 ConfigMap and v1 Secret are decoded, with the ObjectMeta fields a client sets; any other kind is a
ProtobufError (the server answers 415: send JSON)."""

from __future__ import annotations

import base64
from typing import Any

PROTOBUF = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    pass


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ProtobufError("truncated varint")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) in order: an int for varints, bytes for length-delimited fields."""
    out: list[tuple[int, int | bytes]] = []
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
            out.append((number, value))
        elif wire == 2:
            size, i = _varint(data, i)
            if i + size > len(data):
                raise ProtobufError("truncated field")
            out.append((number, data[i:i + size]))
            i += size
        elif wire in (1, 5):  # fixed64 / fixed32: no field meshd reads is one; skipped
            i += 8 if wire == 1 else 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a string")
    return value.decode()


def _entry(value: int | bytes) -> tuple[str, bytes]:
    """A map entry: key (1) and value (2)."""
    if not isinstance(value, bytes):
        raise ProtobufError("expected a map entry")
    key, item = "", b""
    for number, part in fields(value):
        if number == 1:
            key = _text(part)
        elif number == 2 and isinstance(part, bytes):
            item = part
    return key, item


def _meta(data: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for number, value in fields(data):
        if number in (1, 2, 3, 6) and _text(value):  # proto2 writes empty strings too: "" is unset
            meta[{1: "name", 2: "generateName", 3: "namespace", 6: "resourceVersion"}[number]] = _text(value)
        elif number in (11, 12):
            key, item = _entry(value)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = item.decode()
    return meta


def _object(kind: str, data: bytes) -> dict[str, Any]:
    """v1 ConfigMap: metadata 1, data 2, binaryData 3, immutable 4; v1 Secret: metadata 1, data 2 (bytes), type 3,
    stringData 4, immutable 5."""
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": kind}
    immutable = 4 if kind == "ConfigMap" else 5
    for number, value in fields(data):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _meta(value)
        elif number == immutable:
            obj["immutable"] = bool(value)
        elif kind == "Secret" and number == 3:
            if _text(value):
                obj["type"] = _text(value)
        elif number in (2, 3, 4):
            key, item = _entry(value)
            if kind == "ConfigMap":
                name, shown = ("data", item.decode()) if number == 2 else ("binaryData", base64.b64encode(item).decode())
            else:
                name, shown = ("data", base64.b64encode(item).decode()) if number == 2 else ("stringData", item.decode())
            obj.setdefault(name, {})[key] = shown
    return obj


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf request body as the JSON object it stands for; raises ProtobufError."""
    if not body.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf body (no k8s\\0 prefix)")
    type_meta, raw = b"", b""
    for number, value in fields(body[len(MAGIC):]):
        if number == 1 and isinstance(value, bytes):
            type_meta = value
        elif number == 2 and isinstance(value, bytes):
            raw = value
    api_version = kind = ""
    for number, value in fields(type_meta):
        if number == 1:
            api_version = _text(value)
        elif number == 2:
            kind = _text(value)
    if api_version != "v1" or kind not in ("ConfigMap", "Secret"):
        raise ProtobufError(f"protobuf bodies are read for v1 ConfigMap and Secret only, not {api_version} {kind}: "
                            "send application/json")
    return _object(kind, raw)

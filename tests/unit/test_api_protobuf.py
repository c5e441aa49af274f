"""Kubernetes protobuf request bodies (what kubectl's typed clients send for `create secret|configmap`)."""

from __future__ import annotations

import pytest

from meshd.api.protobuf import MAGIC, ProtobufError, decode


def varint(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def field(number: int, value: bytes | int) -> bytes:
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def entry(number: int, key: str, value: bytes) -> bytes:
    return field(number, field(1, key.encode()) + field(2, value))


def body(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = field(1, api_version.encode()) + field(2, kind.encode())
    return MAGIC + field(1, type_meta) + field(2, raw) + field(3, b"") + field(4, b"")


def test_a_secret_and_a_configmap_decode_to_their_json_shape():
    meta = field(1, b"db") + field(3, b"") + entry(11, "app", b"web")
    secret = field(1, meta) + entry(2, "password", b"\x00pw") + field(3, b"kubernetes.io/basic-auth") + field(5, 1)
    assert decode(body("v1", "Secret", secret)) == {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "labels": {"app": "web"}},
        "data": {"password": "AHB3"}, "type": "kubernetes.io/basic-auth", "immutable": True}
    cm = field(1, field(1, b"c")) + entry(2, "a", b"x") + entry(3, "b", b"\x01")
    assert decode(body("v1", "ConfigMap", cm)) == {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "x"},
        "binaryData": {"b": "AQ=="}}


@pytest.mark.parametrize("data", [b"{}", MAGIC + b"\x0a\x05", body("apps/v1", "StatefulSet", b""),
                                  MAGIC + field(1, field(1, b"v1") + field(2, b"Secret")) + b"\x0b"])
def test_anything_else_is_refused(data):
    with pytest.raises(ProtobufError):
        decode(data)

"""Protocol Buffers' wire format, read: varints and a message's fields (gRPC health answers, the Kubernetes
protobuf bodies kubectl sends). Pure."""

from __future__ import annotations

from collections.abc import Iterator


def read_varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of each field of a message: ints for varints, bytes for length-delimited."""
    at = 0
    while at < len(data):
        key, at = read_varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = read_varint(data, at)
            yield number, value
        elif wire == 2:
            length, at = read_varint(data, at)
            if at + length > len(data):
                raise ValueError("truncated protobuf field")
            yield number, data[at:at + length]
            at += length
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


__all__ = ["fields", "read_varint"]

"""The gRPC probe's pure parts: the HealthCheckRequest it sends and how it judges a response."""

from __future__ import annotations

import pytest

from meshd.probe.grpc import decode_response, encode_request, verdict


@pytest.mark.parametrize(
    ("service", "wire"),
    [
        ("", b"\x00\x00\x00\x00\x00"),
        ("a", b"\x00\x00\x00\x00\x03\x0a\x01a"),
        ("x" * 200, b"\x00\x00\x00\x00\xcb\x0a\xc8\x01" + b"x" * 200),  # a two-byte length varint
    ],
)
def test_request_encoding(service: str, wire: bytes) -> None:
    assert encode_request(service) == wire


@pytest.mark.parametrize(
    ("message", "status"),
    [
        (b"\x00\x00\x00\x00\x02\x08\x01", 1),  # SERVING
        (b"\x00\x00\x00\x00\x02\x08\x02", 2),  # NOT_SERVING
        (b"\x00\x00\x00\x00\x00", 0),  # empty message: the default, UNKNOWN
        (b"\x00\x00\x00\x00\x07\x12\x03abc\x08\x01", 1),  # an unknown length-delimited field is skipped
    ],
)
def test_response_decoding(message: bytes, status: int) -> None:
    assert decode_response(message) == status


@pytest.mark.parametrize(
    "message", [b"", b"\x00\x00\x00", b"\x01\x00\x00\x00\x02\x08\x01", b"\x00\x00\x00\x00\x05\x08"]
)
def test_malformed_responses_raise_value_error(message: bytes) -> None:
    with pytest.raises(ValueError):
        decode_response(message)


@pytest.mark.parametrize(
    ("grpc_status", "grpc_message", "body", "ok", "text"),
    [
        (0, "", b"\x00\x00\x00\x00\x02\x08\x01", True, ""),
        (0, "", b"\x00\x00\x00\x00\x02\x08\x02", False, 'service unhealthy (responded with "NOT_SERVING")'),
        (0, "", b"\x00\x00\x00\x00\x02\x08\x03", False, 'service unhealthy (responded with "SERVICE_UNKNOWN")'),
        (5, "unknown service x", b"", False,
         "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service x"),
        (12, "", b"", False, "error: health rpc probe failed: rpc error: code = Unimplemented desc = "),
        (None, "", b"", False, "error: health rpc probe failed: no grpc-status in the response"),
        (0, "", b"\x00", False, "error: health rpc probe failed: short gRPC message"),
    ],
)  # fmt: skip
def test_verdict(grpc_status: int | None, grpc_message: str, body: bytes, ok: bool, text: str) -> None:
    assert verdict(grpc_status=grpc_status, grpc_message=grpc_message, body=body) == (ok, text)

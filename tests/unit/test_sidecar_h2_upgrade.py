"""HTTP/1.1 Upgrade: h2c on an HTTP/2 port: which first requests become stream 1, which get a 400."""

from __future__ import annotations

import pytest

from sidecar.h2.upgrade import Upgrade, parse_upgrade

CURL = (
    b"GET /x?y=1 HTTP/1.1\r\nHost: svc:80\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n"
    b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"
)


def test_curls_upgrade_becomes_stream_1() -> None:
    up = parse_upgrade(CURL + b"PRI * HTTP/2.0")
    assert up == Upgrade(
        [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/x?y=1"), (b":authority", b"svc:80"),
         (b"user-agent", b"curl/7.88.1"), (b"accept", b"*/*")],
        b"AAMAAABkAAQAoAAAAAIAAAAA",
        b"PRI * HTTP/2.0",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "send the HTTP/2 preface or an HTTP/1.1 request with Upgrade: h2c"),
        (b"GET / HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n",
         "Upgrade: h2c needs an HTTP2-Settings header"),
        (CURL.replace(b"GET", b"POST").replace(b"\r\n\r\n", b"\r\nContent-Length: 5\r\n\r\n"),
         "with a body is not supported"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\r\n\r\n", "send the HTTP/2 preface"),
        (b"GET / HTTP/1.1\r\n bad\r\n\r\n", "malformed header line"),
        (b"x" * 20000, "request head too large"),
    ],
)  # fmt: skip
def test_what_is_refused(data: bytes, error: str) -> None:
    result = parse_upgrade(data)
    assert isinstance(result, str) and error in result


def test_incomplete_head_waits() -> None:
    assert parse_upgrade(CURL[:40]) is None

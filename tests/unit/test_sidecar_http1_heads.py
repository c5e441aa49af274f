"""The simple shapes in C (sidecar/http1/heads.c, built as sidecar.http1._heads) accept exactly what their
references in simple.py (regular expressions) accept and give the same results: on the tables of
test_sidecar_simple.py, on hostile heads, on heads generated from pieces that are near misses of the shapes,
and on valid heads with one byte changed."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_sidecar_simple import OK_NGINX, REQUESTS, RESPONSES

from sidecar.http1 import simple
from sidecar.http1.simple import simple_request_re, simple_response_re

try:
    from sidecar.http1 import _heads
except ImportError:  # (not built: setup.py builds it; `python3 setup.py build_ext --inplace` in a checkout)
    _heads = None  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(_heads is None, reason="sidecar.http1._heads is not built")

HOSTILE_REQUESTS = [
    b"",
    b"GET",
    b"GET ",
    b"GET /",
    b"GET / HTTP/1.1",
    b"GET / HTTP/1.1\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r",
    b"GET / HTTP/1.1\r\n\n",
    b"GET  / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1 \r\n\r\n",
    b"GET / HTTP/1.10\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\n\r\n",
    b"GET /a b HTTP/1.1\r\n\r\n",
    b"GET /\x7f HTTP/1.1\r\n\r\n",
    b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n",
    b"GETX / HTTP/1.1\r\n\r\n",
    b"PUT /x HTTP/1.1\r\nHost: a\r\nHost:\r\n\r\n",
    b"PUT /x HTTP/1.1\r\nHost: a\r\nHost: \r\n\r\n",  # (the last Host is empty)
    b"PUT /x HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: \tweb\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: web\t\r\n\r\n",
    b"GET / HTTP/1.1\r\nHOST: web\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost : web\r\n\r\n",
    b"GET / HTTP/1.1\r\n Host: web\r\n\r\n",
    b"GET / HTTP/1.1\r\n: web\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-A: \x7f\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-A: a\x7f\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-A: a\x01\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-A: \xff\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-A: a\nb\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-A: a\r\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n",  # (conflicting framing: general)
    b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
    b"GET / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
    b"GET / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    b"GET / HTTP/1.1\r\nCONTENT-LENGTH: 0\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Lengthx: 0\r\n\r\n",
    b"GET / HTTP/1.1\r\nxContent-Length: 0\r\n\r\n",
    b"GET / HTTP/1.1\r\nTe: x\r\nT: y\r\nTEx: z\r\n\r\n",
    b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n",
    b"GET / HTTP/1.1\r\nProxy-Authorization: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-Forwarded-Proto: http\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-Forwarded-Hostx: h\r\n\r\n",
    b"GET / HTTP/1.1\r\nForwarded-For: 1\r\n\r\n",
    b"GET / HTTP/1.1\r\nexpect: 100-continue\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-A: 1\r\n\tfold\r\n\r\n",
]

HOSTILE_RESPONSES = [
    b"",
    b"HTTP/1.1 200",
    b"HTTP/1.1 200\r\n",
    b"HTTP/1.1 200\r\n\r\n",
    b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200  OK\tx\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 2a0 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 299 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 300 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 O\x00K\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1 1\r\n\r\nxx",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1,1\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nContent-Length: 0x1\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nContent-Length: 000000000000001\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nContent-Length: 0000000000000001\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999999\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nContent-Length:\t1\t\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\nCONTENT-LENGTH: 1\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTE: x\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nUpgrade: h2c\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nProxy-Connection: keep-alive\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nConnection: keep-alive \r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nConnection:keep-alive\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nConnection: KEEP-ALIVE\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nConnection: keep-alivex\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: a\r\nContent-Length: 1\r\n"
    b"Keep-Alive: b\r\nconnection: keep-alive\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: a\r\nContent-Length: 1\r\n"
    b"Keep-Alive: b\r\nconnection: keep-alive\r\nKeep-Alive: c\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nKeep-Alive:\r\nKeep-Alive: \x7f\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 1\r\nX-B:\r\nX-C:   \t\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
    b"http/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
]


def both_requests(data: bytes) -> None:
    assert _heads.simple_request(data) == simple_request_re(data), data


def both_responses(data: bytes) -> None:
    native, reference = _heads.simple_response(data), simple_response_re(data)
    assert native == reference, data
    if native is not None and native[1] == data:
        assert native[1] is data  # (as received: the same object, no copy)


@pytest.mark.parametrize("data", [r for r, _ in REQUESTS] + HOSTILE_REQUESTS)
def test_requests_in_c_as_by_the_regular_expression(data: bytes):
    both_requests(data)


@pytest.mark.parametrize("data", [r for r, _ in RESPONSES] + HOSTILE_RESPONSES + [OK_NGINX])
def test_responses_in_c_as_by_the_regular_expression(data: bytes):
    both_responses(data)


def test_the_sidecar_uses_the_c_scanner_when_built_unless_told_not_to():
    if os.environ.get("MESHD_NATIVE_HEADS", "1").strip().lower() in ("0", "false", "no", "off"):
        assert simple.NATIVE is None and simple.simple_request is simple_request_re
        assert simple.simple_response is simple_response_re
    else:
        assert simple.simple_request is _heads.simple_request
        assert simple.simple_response is _heads.simple_response


def test_the_c_scanner_wants_bytes():
    with pytest.raises(TypeError):
        _heads.simple_request("GET / HTTP/1.1\r\n\r\n")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _heads.simple_response(bytearray(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))  # type: ignore[arg-type]


# --- generated heads: near misses of the shapes, piece by piece ------------------------------------------
NAMES = [
    b"Host", b"host", b"HOST", b"Hostx", b"X-Request-Id", b"Cookie", b"TE", b"Te", b"T", b"Content-Length",
    b"content-length", b"Content-Lengthx", b"Transfer-Encoding", b"Connection", b"connection", b"Keep-Alive",
    b"keep-alive", b"Keep-Alivex", b"Upgrade", b"Expect", b"X-Forwarded-For", b"Forwarded", b"Proxy-Connection",
    b"X(", b"", b"X A", b"x-\xc3\xa9", b"!#$%&'*+-.^_`|~",
]  # fmt: skip
SEPARATORS = [b": ", b":", b":  ", b": \t", b":\t", b" : ", b" :"]
VALUE_PIECES = [
    b"a", b"web", b"1", b"02", b"123456789012345", b"1234567890123456", b"keep-alive", b"Keep-Alive", b"close",
    b"chunked", b" ", b"\t", b"\x00", b"\x7f", b"\x80", b"\xff", b"\r", b"\n", b"-", b"100-continue", b"",
]  # fmt: skip
LINE_ENDS = [b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b""]
REQUEST_LINES = [
    b"GET / HTTP/1.1", b"POST /a?b=c HTTP/1.1", b"HEAD /%20 HTTP/1.1", b"OPTIONS * HTTP/1.1", b"get / HTTP/1.1",
    b"GET / HTTP/1.0", b"GET http://a/ HTTP/1.1", b"PATCH /x HTTP/1.1 ", b"DELETE /\x80 HTTP/1.1", b"CONNECT a:1 HTTP/1.1",
]  # fmt: skip
STATUS_LINES = [
    b"HTTP/1.1 200 OK", b"HTTP/1.1 200", b"HTTP/1.1 204 No Content", b"HTTP/1.1 201 \t", b"HTTP/1.1 299 x\x80",
    b"HTTP/1.1 404 Not Found", b"HTTP/1.0 200 OK", b"HTTP/1.1 200OK", b"HTTP/1.1 2xx", b"HTTP/1.1 200 \x00",
]  # fmt: skip

values = st.lists(st.sampled_from(VALUE_PIECES), max_size=4).map(b"".join)
lines = st.tuples(
    st.sampled_from(NAMES), st.sampled_from(SEPARATORS), values, st.sampled_from(LINE_ENDS)
).map(b"".join)


def heads(first: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.tuples(
        st.sampled_from(first), st.sampled_from(LINE_ENDS), st.lists(lines, max_size=7).map(b"".join),
        st.sampled_from([b"\r\n", b"\r\n", b"\n", b""]), st.sampled_from([b"", b"", b"x", b"ok", b"\r\n", b"GET"]),
    ).map(b"".join)  # fmt: skip


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(heads(REQUEST_LINES))
def test_generated_requests_in_c_as_by_the_regular_expression(data: bytes):
    both_requests(data)


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    """A status line, header lines with a Content-Length among them (or not), a body of about that length."""
    head = [draw(st.sampled_from(STATUS_LINES)) + draw(st.sampled_from([b"\r\n", b"\n"]))]
    head += draw(st.lists(st.sampled_from(GOOD_LINES) | st.sampled_from(HOP_LINES) | lines, max_size=5))
    n = draw(st.integers(min_value=0, max_value=3))
    length = draw(st.sampled_from([b"Content-Length: %d\r\n" % n, b"content-length:%d \r\n" % n, b""]))
    head.insert(draw(st.integers(min_value=1, max_value=len(head))), length)
    body = b"x" * (n + draw(st.sampled_from([0, 0, 0, 1, -1])))
    return b"".join(head) + draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"])) + body


HOP_LINES = [b"Connection: keep-alive\r\n", b"connection:\tKeep-Alive \r\n", b"Keep-Alive: timeout=5\r\n"]
GOOD_LINES = [b"Server: nginx\r\n", b"X-Request-Id: 3f0c\r\n", b"Date: Sat, 05 Dec 2026\r\n", b"X-E:\r\n"]


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(heads(STATUS_LINES) | responses())
def test_generated_responses_in_c_as_by_the_regular_expression(data: bytes):
    both_responses(data)


VALID = [r for r, ok in REQUESTS if ok] + [r for r, ok in RESPONSES if ok]


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(VALID), st.integers(min_value=0), st.integers(min_value=0, max_value=255),
       st.sampled_from(["replace", "insert", "delete"]))  # fmt: skip
def test_valid_heads_with_one_byte_changed_in_c_as_by_the_regular_expression(
    data: bytes, at: int, byte: int, how: str
):
    i = at % len(data)
    if how == "replace":
        data = data[:i] + bytes([byte]) + data[i + 1 :]
    elif how == "insert":
        data = data[:i] + bytes([byte]) + data[i:]
    else:
        data = data[:i] + data[i + 1 :]
    both_requests(data)
    both_responses(data)


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_in_c_as_by_the_regular_expression(data: bytes):
    both_requests(data)
    both_responses(data)

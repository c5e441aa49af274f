"""The simple shapes of HTTP/1 messages, recognised without the parser: a whole request head that needs no
rewriting beyond the forwarding headers, and a whole response framed by one Content-Length that goes to the
client as received (minus Connection: keep-alive and Keep-Alive).

Real clients vary their heads on every request (request ids, cookies, trace headers), so the memo of exact
heads (client.py, upstream.py) misses for them; this is the general path's common case done with one regular
expression over the bytes instead of llhttp's callbacks. Each pattern accepts a strict subset of what llhttp
accepts (token header names, no whitespace before the colon, CRLF line ends, no obs-fold, no NUL or bare CR),
and anything that changes framing or needs rewriting (Content-Length and Transfer-Encoding in requests,
hop-by-hop headers, Expect, forwarding headers the client sent) is left to the general path: None.

The regular expressions are the reference (simple_request_re, simple_response_re); the sidecar uses the same
shapes recognised in C (heads.c, built by setup.py as sidecar.http1._heads) when it is built, unless
MESHD_NATIVE_HEADS=0: the unit tests check both agree."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from types import ModuleType

from ..http import forwarded_for

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_VALUE = rb"[\t\x20-\x7e\x80-\xff]*"
# request headers the general path rewrites, or that give the request a body or a special meaning
_REQUEST_SPECIAL = (
    rb"connection|keep-alive|proxy-connection|te|trailer|transfer-encoding|upgrade|proxy-authenticate"
    rb"|proxy-authorization|content-length|expect|x-forwarded-for|x-forwarded-proto|x-forwarded-host"
    rb"|forwarded|host"
)
# a value after exactly one space (as the general path writes header lines: then the bytes are the same)
_SPACED_VALUE = rb" ((?:[\x21-\x7e\x80-\xff]" + _VALUE + rb")?)"
SIMPLE_REQUEST = re.compile(
    rb"(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH) (/[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]*) HTTP/1\.1\r\n"
    rb"((?:(?i:host):" + _SPACED_VALUE + rb"\r\n"
    rb"|(?!(?i:" + _REQUEST_SPECIAL + rb"):)" + _TOKEN + rb": (?:[\x21-\x7e\x80-\xff]" + _VALUE + rb")?\r\n)*)"
    rb"\r\n"
)
# response headers that change framing or the connection; Connection: keep-alive and Keep-Alive are dropped
_RESPONSE_SPECIAL = (
    rb"content-length|connection|keep-alive|proxy-connection|te|trailer|transfer-encoding|upgrade"
    rb"|proxy-authenticate|proxy-authorization"
)
_OTHER_LINES = rb"(?:(?!(?i:" + _RESPONSE_SPECIAL + rb"):)" + _TOKEN + rb":" + _VALUE + rb"\r\n)*"
_HOP_LINE = rb"((?i:connection):[ \t]*(?i:keep-alive)[ \t]*\r\n|(?i:keep-alive):" + _VALUE + rb"\r\n)"
# header lines with up to two hop-by-hop lines to drop (their spans are groups)
_LINES = _OTHER_LINES + rb"(?:" + _HOP_LINE + _OTHER_LINES + rb")?(?:" + _HOP_LINE + _OTHER_LINES + rb")?"
SIMPLE_RESPONSE = re.compile(
    rb"HTTP/1\.1 (2[0-9][0-9])(?: [\t\x20-\x7e\x80-\xff]*)?\r\n"
    + _LINES
    + rb"(?i:content-length):[ \t]*([0-9]{1,15})[ \t]*\r\n"
    + _LINES
    + rb"\r\n"
)


def simple_request_re(data: bytes) -> tuple[bytes, bytes | None] | None:
    """(method, the last Host's value) if `data` is exactly one whole request head of the simple shape (no
    body: neither Content-Length nor Transfer-Encoding; each header line as the general path would write it,
    "Name: value"), else None. The head for the endpoint is then `data` without its last CRLF, and the
    forwarding headers (forwarding_headers)."""
    m = SIMPLE_REQUEST.fullmatch(data)
    if m is None:
        return None
    return m.group(1, 4)  # type: ignore[return-value]


def forwarding_headers(peer_ip: str, host: bytes | None, proto: bytes | None) -> bytes:
    """The header lines the general path (wire.build_request_headers) adds to a request that carried no
    forwarding headers of its own, and the empty line that ends the head."""
    ip = peer_ip.encode()
    out = b"X-Forwarded-For: " + ip + b"\r\n"
    elem = b"for=" + forwarded_for(peer_ip) + b";proto=" + (proto or b"http")
    if proto is not None:
        out += b"X-Forwarded-Proto: " + proto + b"\r\n"
        if host:
            out += b"X-Forwarded-Host: " + host + b"\r\n"
    if host:
        elem += b';host="' + host + b'"'
    return out + b"Forwarded: " + elem + b"\r\n\r\n"


def simple_response_re(data: bytes) -> tuple[int, bytes, int] | None:
    """(status, the bytes for the client, its Content-Length: the body is their end) if `data` is exactly one
    whole 2xx response (not 204) of HTTP/1.1, framed by one Content-Length, keeping the connection open, with
    no hop-by-hop header but Connection: keep-alive and Keep-Alive (both dropped), else None."""
    m = SIMPLE_RESPONSE.match(data)
    if m is None:
        return None
    status, value = m.group(1, 4)
    length = int(value)
    if len(data) - m.end() != length or status == b"204":
        return None
    regs = m.regs  # (the spans of the lines to drop: groups 2, 3, 5 and 6; (-1, -1) if absent)
    if regs[2][0] < 0 and regs[5][0] < 0:  # (group 3 only after 2, 6 only after 5)
        return int(status), data, length
    parts = []
    i = 0
    for start, end in (regs[2], regs[3], regs[5], regs[6]):
        if start >= 0:
            parts.append(data[i:start])
            i = end
    parts.append(data[i:])
    return int(status), b"".join(parts), length


def _native() -> ModuleType | None:
    if os.environ.get("MESHD_NATIVE_HEADS", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    try:
        from . import _heads
    except ImportError:  # not built (no C compiler at install time, or a source checkout): the regexes
        return None
    return _heads


NATIVE = _native()
simple_request: Callable[[bytes], tuple[bytes, bytes | None] | None] = (
    NATIVE.simple_request if NATIVE is not None else simple_request_re
)
simple_response: Callable[[bytes], tuple[int, bytes, int] | None] = (
    NATIVE.simple_response if NATIVE is not None else simple_response_re
)

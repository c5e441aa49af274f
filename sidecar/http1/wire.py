"""HTTP/1 bytes: corked writes, rewriting request and response heads (hop-by-hop out, forwarding headers in),
response heads as servers really send them (bare LF line ends), and the memo of response heads seen before."""

from __future__ import annotations

import re
from typing import Any

from ..http import HOP_BY_HOP, connection_tokens, forwarded_for

WRITE_HIGH = 256 * 1024  # transport write buffer high-water mark
# response framing towards the client
R_NONE, R_LENGTH, R_CHUNKED, R_CLOSE = 0, 1, 2, 3
CONTINUE_100 = b"HTTP/1.1 100 Continue\r\n\r\n"


class Writer:
    """Wraps a transport. While `buf` is a list (see `gather`), writes are collected and sent in one call."""

    __slots__ = ("buf", "closed", "transport")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.buf: list[bytes] | None = None
        self.closed = False

    def write(self, data: bytes) -> None:
        buf = self.buf
        if buf is not None:
            buf.append(data)
        elif not self.closed:
            self.transport.write(data)

    def flush(self) -> None:
        buf = self.buf
        if buf is not None:
            self.buf = None
            if buf and not self.closed:
                self.transport.write(buf[0] if len(buf) == 1 else b"".join(buf))

    def close(self) -> None:
        if not self.closed:
            self.flush()
            self.closed = True
            self.transport.close()


# --- request heads ----------------------------------------------------------------------------------------
class RequestHead:
    """What a request's header block becomes for the endpoint: the block, its Host and what it asks for."""

    __slots__ = ("block", "chunked", "expect", "has_connection", "host")

    def __init__(self) -> None:
        self.block = b""
        self.host: bytes | None = None
        self.chunked = self.expect = self.has_connection = False


def build_request_headers(headers: list[tuple[bytes, bytes]], *, peer_ip: str, upgrade: bool,
                          proto: bytes | None = None) -> RequestHead:
    """The header block for the endpoint (hop-by-hop out, forwarding headers in) and the Host, in one pass
    that also notes chunked framing, Expect: 100-continue and whether a Connection header is there."""
    out = RequestHead()
    parts: list[bytes] = [b"", b"", b"", b""]  # keeps header groups at offsets 4k for _drop_headers
    xff = fwd = None
    drop: set[bytes] | None = None
    for name, value in headers:
        n = name.lower()
        if n in HOP_BY_HOP:
            if n == b"connection" or n == b"proxy-connection":
                out.has_connection = True
            if n == b"transfer-encoding":
                out.chunked = b"chunked" in value.lower()
            elif n == b"connection":
                tokens = connection_tokens(value) - HOP_BY_HOP
                if tokens:
                    drop = tokens if drop is None else drop | tokens
            elif n == b"upgrade" and upgrade:
                parts += (name, b": ", value, b"\r\n")
            continue
        if n == b"x-forwarded-for":
            xff = value if xff is None else xff + b", " + value
            continue
        if n == b"forwarded":
            fwd = value if fwd is None else fwd + b", " + value
            continue
        if proto is not None and (n == b"x-forwarded-proto" or n == b"x-forwarded-host"):
            continue  # at the edge (Ingress) these are ours to say, not the client's
        if n == b"expect":
            out.expect = value.strip().lower() == b"100-continue"
            continue
        if n == b"host":
            out.host = value
        parts += (name, b": ", value, b"\r\n")
    if drop:
        drop.discard(b"upgrade")
        if drop:
            parts = _drop_headers(parts, 4, drop)
    ip = peer_ip.encode()
    parts += (b"X-Forwarded-For: ", xff + b", " + ip if xff else ip, b"\r\n")
    elem = b"for=" + forwarded_for(peer_ip) + b";proto=" + (proto or b"http")
    if proto is not None:
        parts += (b"X-Forwarded-Proto: ", proto, b"\r\n")
        if out.host:
            parts += (b"X-Forwarded-Host: ", out.host, b"\r\n")
    if out.host:
        elem += b';host="' + out.host + b'"'
    parts += (b"Forwarded: ", fwd + b", " + elem if fwd else elem, b"\r\n")
    if out.chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    if upgrade:
        parts.append(b"Connection: upgrade\r\n")
    parts.append(b"\r\n")
    out.block = b"".join(parts)
    return out


def _drop_headers(parts: list[bytes], start: int, names: set[bytes]) -> list[bytes]:
    """Remove (name, ': ', value, CRLF) groups whose name is in `names` from parts[start:]."""
    kept = parts[:start]
    for i in range(start, len(parts), 4):
        if parts[i].lower() not in names:
            kept += parts[i : i + 4]
    return kept


# --- response heads ---------------------------------------------------------------------------------------
_HOP_NAMES = rb"connection|keep-alive|proxy-connection|te|trailer|transfer-encoding|proxy-authenticate|proxy-authorization"
_HOP_LINE = re.compile(rb"^(?:" + _HOP_NAMES + rb"|upgrade)[ \t]*:[^\n]*\n", re.IGNORECASE | re.MULTILINE)
_HOP_EXCEPT_UPGRADE = re.compile(rb"^(?:" + _HOP_NAMES + rb")[ \t]*:[^\n]*\n", re.IGNORECASE | re.MULTILINE)
_LINE_END = re.compile(rb"\r?\n")

HEAD_CACHE_SIZE = 512  # distinct response heads kept (most differ only in Date: a few per second)
HEAD_CACHE_MAX_BYTES = 2048
# raw response head -> scan_response_head(raw)
_HEAD_CACHE: dict[bytes, tuple[bytes, bool, bool, bytes]] = {}
# raw response head (as received, up to its last header line's CRLF) -> (the head for the client with its
# final CRLF, the body's Content-Length, the status), or None: a head the general path handled as the common
# case (2xx but 204, Content-Length framing, keep-alive; see Exchange.response_head) that the response memo
# may repeat (UpstreamConnection.data_received)
_FAST_RESPONSES: dict[bytes, tuple[bytes, int, int] | None] = {}


def scan_response_head(raw: bytes, *, upgrade: bool) -> tuple[bytes, bool, bool, bytes]:
    """(the head for the client: hop-by-hop lines out, HTTP/1.1; chunked framing?; Content-Length present?;
    that head with its final CRLF)"""
    lower = raw.lower()
    chunked = False
    i = lower.find(b"\ntransfer-encoding:")
    if i >= 0:
        chunked = b"chunked" in lower[i : lower.find(b"\n", i + 1)]
    length = b"\ncontent-length:" in lower
    head = (_HOP_EXCEPT_UPGRADE if upgrade else _HOP_LINE).sub(b"", raw)
    i = lower.find(b"\nconnection:")
    if i >= 0:
        tokens = connection_tokens(lower[i + 12 : lower.find(b"\n", i + 1)].strip()) - HOP_BY_HOP
        if tokens:
            head = _drop_named(head, tokens)
    if head[:8] != b"HTTP/1.1":
        head = b"HTTP/1.1" + head[8:]
    return head, chunked, length, head + b"\r\n"


def scan_response_head_cached(raw: bytes) -> tuple[tuple[bytes, bool, bool, bytes], bool]:
    """scan_response_head(raw) from the cache of heads seen before; and whether `raw` was seen before."""
    hit = _HEAD_CACHE.get(raw)
    if hit is not None:
        return hit, True
    hit = scan_response_head(raw, upgrade=False)
    if len(raw) <= HEAD_CACHE_MAX_BYTES:  # (big heads, e.g. with cookies, are not kept)
        if len(_HEAD_CACHE) >= HEAD_CACHE_SIZE:
            _HEAD_CACHE.clear()
        _HEAD_CACHE[raw] = hit
    return hit, False


def learn_response(raw: bytes, whole: bytes, status: int) -> None:
    """Remember `raw` for the response memo if its Content-Length is one plain number (else None)."""
    lower = raw.lower()
    entry = None
    i = lower.find(b"\ncontent-length:")
    if (
        i >= 0
        and lower.find(b"\ncontent-length:", i + 1) < 0
        and b"\ntransfer-encoding" not in lower
        and raw.count(b"\n") == raw.count(b"\r\n")  # CRLF line ends only
        and b"\n " not in raw
        and b"\n\t" not in raw  # no obs-fold
    ):
        value = lower[i + 16 : lower.find(b"\r", i + 1)].strip(b" \t")
        if value.isdigit() and len(value) < 16:
            entry = (whole, int(value), status)
    if len(_FAST_RESPONSES) >= HEAD_CACHE_SIZE:
        _FAST_RESPONSES.clear()
    _FAST_RESPONSES[raw] = entry


def learn_simple_response(raw: bytes, whole: bytes, length: int, status: int) -> None:
    """Remember `raw` for the response memo: a head of the simple shape (simple.simple_response) that came
    twice; `whole` is the head for the client with its final CRLF."""
    if len(raw) <= HEAD_CACHE_MAX_BYTES:
        if len(_FAST_RESPONSES) >= HEAD_CACHE_SIZE:
            _FAST_RESPONSES.clear()
        _FAST_RESPONSES[raw] = (whole, length, status)


def frame_response(
    *,
    status: int,
    method: bytes | None,
    http10: bool,
    chunked: bool,
    length: bool,
    upgrade: bool,
    keep_alive: bool,
) -> tuple[int, bytes, bool, bool]:
    """How a response goes to the client: (framing R_*, header lines to add, the client connection stays
    open, the endpoint ends the body by closing). `keep_alive`: the request asked for it and the client
    connection is not closing."""
    extra = b""
    eof_body = False
    if status == 101:
        mode = R_NONE
        extra = b"Connection: upgrade\r\n"
    elif method == b"HEAD" or status in (204, 304) or status < 200:
        mode = R_NONE
    elif chunked:
        mode = R_CLOSE if http10 else R_CHUNKED
    elif length:
        mode = R_LENGTH
    else:
        mode = R_CLOSE if http10 else R_CHUNKED
        eof_body = True
    if mode == R_CHUNKED:
        extra += b"Transfer-Encoding: chunked\r\n"
    if upgrade and status != 101:
        keep_alive = False  # the request parser already switched: no further requests on it
    if mode == R_CLOSE or not keep_alive:
        keep_alive = False
        if status != 101:
            extra += b"Connection: close\r\n"
    elif http10:
        extra += b"Connection: keep-alive\r\n"
    return mode, extra, keep_alive, eof_body


def _drop_named(head: bytes, names: set[bytes]) -> bytes:
    """Remove the header lines named in `names` (lower-case) from a raw header block."""
    pattern = rb"^(?:" + b"|".join(re.escape(n) for n in names) + rb")[ \t]*:[^\n]*\n"
    return re.sub(pattern, b"", head, flags=re.IGNORECASE | re.MULTILINE)


def head_end(buf: bytes, start: int, *, lenient: bool) -> tuple[int, int]:
    """Where the response head that starts at `start` in `buf` ends: (the end of its last header line, the
    start of what follows its empty line). Strict: llhttp has checked its line ends are CRLF; lenient: each
    line ends in CRLF or a bare LF."""
    if not lenient:
        end = buf.find(b"\r\n\r\n", start) + 2
        return end, end + 2
    i = start
    while True:
        i = buf.index(b"\n", i) + 1
        if buf[i : i + 1] == b"\n":
            return i, i + 1
        if buf[i : i + 2] == b"\r\n":
            return i, i + 2


def with_crlf(raw: bytes) -> bytes:
    """A head's line ends made CRLF (what the client gets, whatever the endpoint sent)."""
    return _LINE_END.sub(b"\r\n", raw)

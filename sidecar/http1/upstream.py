"""A pooled keep-alive connection to one endpoint port, carrying one Exchange at a time; parses responses with
llhttp (leniently, as nginx does, once an endpoint sends bare-LF line ends) and remembers response heads it
has seen (the memo: a whole response whose head came before skips the parser)."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import TYPE_CHECKING, Any

from httptools import HttpResponseParser
from httptools.parser.errors import HttpParserError, HttpParserUpgrade

from ..unread import unread_bytes
from .simple import simple_response
from .wire import (
    _FAST_RESPONSES,
    R_CHUNKED,
    WRITE_HIGH,
    Writer,
    head_end,
    learn_simple_response,
    with_crlf,
)

if TYPE_CHECKING:
    from ..services import EndpointState
    from .exchange import Exchange

monotonic = time.monotonic
MAX_IDLE_PER_ENDPOINT = 128
PAUSE_UPSTREAM = 4  # (ClientConnection's pause reason: this endpoint's write buffer is full)
VARYING_RESPONSES = 8  # simple responses in a row, each with a new head, before the memo is skipped


def response_parser(proto: Any, *, lenient: bool) -> HttpResponseParser:
    parser = HttpResponseParser(proto)
    if lenient:
        parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)
    return parser


class UpstreamConnection(asyncio.Protocol):
    """A keep-alive connection to one endpoint port; carries one Exchange at a time (an asyncio Protocol)."""

    def __init__(self, ep: EndpointState, port: int) -> None:
        self.ep = ep
        self.port = port
        self.parser = HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.closed = False
        self.transport: Any = None
        self.out: Writer = None  # type: ignore[assignment]
        self.hbuf = b""  # bytes of the response head being received (from the start of the response)
        self.hoff = 0  # where the current response's head starts in hbuf (after any 1xx heads)
        self.in_head = False
        self.skip = False
        self.stale_parser = False
        self.keep_alive = True
        self.tunnel: Writer | None = None
        self.idle_since = 0.0
        self.read_paused = False
        self.eof = False
        self.clean = True  # the parser is fresh (created after the last response ended): fed nothing since
        self.lenient = False  # the endpoint ends header lines with a bare LF: its parsers accept it
        self.simple_shapes = True  # responses of the simple shape skip the parser (simple.py; off: the memo)
        self.last_head = b""  # the head of the last response of the simple shape
        # simple responses in a row whose head differed from the one before (all differ: a response id, a
        # Date that moves); at VARYING_RESPONSES the memo is no longer consulted on this connection (the
        # simple path answers alone: a head that never repeats only costs the memo's lookup)
        self.unrepeated = 0

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        self.transport = transport
        self.out = Writer(transport)
        transport.set_write_buffer_limits(high=WRITE_HIGH)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if exc is not None and self.exchange is not None and self.tunnel is None:
            # a write failed first: the endpoint's early answer may still wait in the kernel (unread.py)
            rest = unread_bytes(self.transport)
            if rest:
                self.data_received(rest)
        idle = self.ep.idle.get(self.port)
        if idle and self in idle:
            idle.remove(self)
        tunnel, self.tunnel = self.tunnel, None
        ex = self.exchange
        self.exchange = None
        if ex is not None:
            ex.upstream_lost(self)
        elif tunnel is not None:
            tunnel.close()

    def eof_received(self) -> bool:
        self.eof = True
        tunnel = self.tunnel
        if tunnel is not None:
            ex = self.exchange
            if ex is None or ex.conn.eof or not tunnel.transport.can_write_eof():
                tunnel.close()
                return False  # both directions ended: close both
            tunnel.flush()
            tunnel.transport.write_eof()
            return True
        return False

    def pause_writing(self) -> None:
        ex = self.exchange
        if ex is not None:
            ex.conn.pause(PAUSE_UPSTREAM)

    def resume_writing(self) -> None:
        ex = self.exchange
        if ex is not None:
            ex.conn.resume(PAUSE_UPSTREAM)

    def pause_reading(self) -> None:
        if not self.read_paused and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()

    def release(self, now: float = 0.0) -> None:
        """Back to the endpoint's idle pool (or closed if the endpoint is gone or the pool is full)."""
        ep = self.ep
        if self.read_paused:
            self.resume_reading()
        if self.closed or ep.removed or not self.keep_alive:
            self.close()
            return
        idle = ep.idle.get(self.port)
        if idle is None:
            idle = ep.idle[self.port] = []
        if len(idle) >= MAX_IDLE_PER_ENDPOINT:
            self.close()
            return
        self.idle_since = now or monotonic()
        idle.append(self)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.out.close()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.abort()

    # --- reading responses ------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        ex = self.exchange
        if self.clean and ex is not None and ex.plain and self._from_memo(ex, data):
            return
        if self.tunnel is not None:
            self.tunnel.write(data)
        elif ex is None:
            self.abort()  # nobody asked: an idle connection must not speak
        else:
            self._feed(ex, data)

    def _from_memo(self, ex: Exchange, data: bytes) -> bool:
        """The memo: `data` is one whole response whose head the general path handled as the common case
        before (wire._FAST_RESPONSES): the head for the client is known, the body is the rest of `data`
        (exactly Content-Length bytes); else, a whole response of the simple shape (simple.py). The parser is
        not fed (it stays fresh)."""
        if self.unrepeated >= VARYING_RESPONSES:  # heads that never repeat: the simple shape alone
            if not self.simple_shapes or ex.conn.closing:
                return False
            simple = simple_response(data)
            if simple is None:
                return False
            ex.response_whole(self, simple[0], simple[1])
            return True
        i = data.find(b"\r\n\r\n")  # (-1: data[:1] is never a head learnt)
        raw = data[: i + 2]
        hit = _FAST_RESPONSES.get(raw)
        if hit is None:  # a response of the simple shape (heads that vary on every response meet this path)
            if not self.simple_shapes or ex.conn.closing:
                return False
            simple = simple_response(data)
            if simple is None:
                return False
            status, out, length = simple
            if raw == self.last_head:  # the same head twice in a row: the memo learns it
                learn_simple_response(raw, out[: len(out) - length], length, status)
                self.unrepeated = 0
            else:
                self.last_head = raw
                self.unrepeated += 1
            ex.response_whole(self, status, out)
            return True
        if len(data) - i - 4 != hit[1] or ex.conn.closing:
            return False
        self.unrepeated = 0
        whole, length, status = hit
        ex.response_whole(self, status, whole + data[i + 4 :] if length else whole)
        return True

    def _feed(self, ex: Exchange, data: bytes) -> None:
        """The general path: llhttp, its callbacks below; what goes to the client leaves in one write."""
        self.clean = False
        if self.in_head:
            self.hbuf += data
        out = ex.conn.out
        gather = out.buf is None
        if gather:
            out.buf = []
        try:
            self._parse(data)
        finally:
            if self.stale_parser or (self.exchange is not ex and not self.closed):
                # a response ended: a fresh parser (whatever followed it in `data` was for nobody)
                self.stale_parser = False
                self.parser = response_parser(self, lenient=self.lenient)
                self.clean = True
            if gather:
                out.flush()

    def _parse(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as e:
            ex = self.exchange
            if ex is not None and ex.status == 101:
                ex.upstream_upgraded(self, data[e.args[0] :])
        except HttpParserError as e:
            ex = self.exchange
            if self.in_head and not self.lenient and ex is not None:
                # a head llhttp refuses as strict but nginx and HAProxy accept (header lines ending in a bare
                # LF: busybox httpd CGI, embedded servers): parse it again from its start, leniently, and keep
                # this connection lenient (a strict head costs nothing extra)
                self.lenient = True
                self.parser = response_parser(self, lenient=True)
                self.hoff = 0
                self.skip = False
                self._parse(self.hbuf)
            elif ex is not None:
                ex.upstream_failed(self, f"invalid response: {e}")
            else:
                self.abort()

    # parser callbacks (no per-header callbacks: the raw head is forwarded, minus hop-by-hop lines)
    def on_headers_complete(self) -> None:
        if self.stale_parser:
            return
        buf = self.hbuf
        start = self.hoff
        end, after = head_end(buf, start, lenient=self.lenient)
        status = self.parser.get_status_code()
        if status < 200 and status != 101:
            self.skip = True  # 1xx informational: the real response follows
            self.hoff = after
            return
        raw = buf[start:end] if not self.lenient else with_crlf(buf[start:end])
        self.hbuf = b""
        self.hoff = 0
        self.in_head = False
        ex = self.exchange
        if ex is None:
            return
        self.keep_alive = self.parser.should_keep_alive()
        ex.response_head(self, status, raw)
        if ex.method == b"HEAD" and self.exchange is ex and status != 101:
            # llhttp cannot be told the response to HEAD has no body: finish here, start a fresh parser
            self.stale_parser = True
            ex.response_done(self)

    def on_body(self, body: bytes) -> None:
        ex = self.exchange
        if ex is not None and not self.stale_parser:
            if ex.resp_mode == R_CHUNKED:
                ex.response_body(body)
            else:
                out = ex.conn.out
                buf = out.buf
                if buf is not None:  # out.write(body), inlined
                    buf.append(body)
                else:
                    out.write(body)

    def on_message_complete(self) -> None:
        if self.skip:
            self.skip = False
            return
        if self.stale_parser:
            return
        ex = self.exchange
        if ex is not None and ex.status != 101:
            ex.response_done(self)


def sweep_idle(endpoints: list[EndpointState], *, now: float, idle_timeout: float) -> int:
    """Close upstream connections idle longer than `idle_timeout`; returns how many."""
    closed = 0
    for ep in endpoints:
        for conns in ep.idle.values():
            for up in [c for c in conns if now - c.idle_since > idle_timeout]:
                up.close()
                closed += 1
    return closed

"""One client connection: parses requests with llhttp (strict: a client never gets the leniency an endpoint
gets), bounds their heads in size and time, runs them in order as Exchanges (pipelined requests are answered
in order), and remembers the requests it has seen (the request memo: a repeated request skips the parser)."""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from httptools import HttpRequestParser
from httptools.parser.errors import HttpParserError, HttpParserUpgrade

from ..http import error_response
from ..services import METHOD_INDEX
from .exchange import PAUSE_BODY, PAUSE_PIPELINE, PAUSE_UPGRADE, Exchange
from .simple import forwarding_headers, simple_request
from .wire import WRITE_HIGH, RequestHead, Writer

if TYPE_CHECKING:
    from ..proxy import Listener, ProxyOptions

__all__ = ["PAUSE_BODY", "ClientConnection", "HeadTooLarge", "ProcessStats"]

monotonic = time.monotonic
PIPELINE_LIMIT = 32  # queued requests on one connection before we stop reading from it
LINGER_SECONDS = 2  # a refused connection reads and drops the client's bytes this long before closing
FAST_REQUESTS_PER_CONNECTION = 8  # distinct request heads a connection's memo keeps ...
FAST_REQUEST_MAX_BYTES = 1024  # ... each at most this long (bigger ones, e.g. with cookies, are not kept)
# a request line the memo may pair with a header block learnt from another request line: a method without a
# body of its own, an origin-form target of RFC 3986 characters (a subset of what llhttp accepts)
_FAST_REQUEST_LINE = re.compile(
    rb"(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH) (/[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]*) HTTP/1\.1\r\n"
)
# a request the memo repeats: (the head for the endpoint, method, its index, Host, its response may be memo'd)
Memo = tuple[bytes, bytes, int, bytes | None, bool]


class ProcessStats:
    """Process-wide plain counters."""

    active_connections = 0


STATS = ProcessStats()


class HeadTooLarge(Exception):
    """A request head beyond the listener's bounds (answered 431)."""


class ClientConnection(asyncio.Protocol):
    """One client connection: parses requests, runs them in order."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.parser = HttpRequestParser(self)
        self.queue: deque[Exchange] = deque()
        self.cur: Exchange | None = None
        self.paused = 0
        self.write_paused = False
        self.tunnel: Writer | None = None
        self.upgrading: Exchange | None = None
        self.closed = False
        self.closing = False
        self.eof = False
        self._advancing = False
        self.transport: Any = None
        self.out: Writer = None  # type: ignore[assignment]
        self.peer_ip = "unknown"
        self.hkey: list[tuple[bytes, bytes]] | None = None  # the last request's headers ...
        self.hval: RequestHead | None = None  # ... and what they gave
        self.active = False  # set on every read; the listener's once-a-second scan counts quiet seconds
        self.quiet = 0
        # the request memo (see _from_memo): requests this connection sent before, as bytes, that the general
        # path found simple, with what it made of them; None: off (closing, closed, tunnelled)
        self.fast: dict[bytes, Memo] | None = {}
        # ... and their header blocks (after the request line), to pair with another simple request line:
        # what the general path made of the block (the header lines for the endpoint) and its Host
        self.fast_blocks: dict[bytes, tuple[bytes, bytes | None]] = {}
        self.idle_parser = True  # the parser is between two requests (fed nothing since one ended)
        self.unrepeated = 0  # requests learnt since the memo last hit (all differ: learning stops) ...
        self.learning = True  # ... (the memo then only has what it learnt; simple requests skip the parser)
        self.fwd_host: bytes | None = None  # the Host the forwarding headers below were made for
        self.fwd: bytes | None = None
        self.simple_shapes = True  # requests of the simple shape skip the parser (simple.py; off: the memo alone)
        self.last_host: bytes | None = None  # the Host of the last request start() routed
        self.spare: Exchange | None = None  # a finished memo exchange to reuse
        # the request head being received (bounded in size and time): bytes so far, since when (0: none)
        self.head_size = 0
        self.head_since = 0.0
        self.head_open = False  # the parser is inside a request head
        self.linger = 0  # refused (400/408/431): seconds left reading and dropping what the client sends

    # transport events
    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        self.transport = transport
        self.out = Writer(transport)
        transport.set_write_buffer_limits(high=WRITE_HIGH)
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer_ip = peer[0]
        self.listener.connections.add(self)
        STATS.active_connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        listener = self.listener
        listener.connections.discard(self)
        STATS.active_connections -= 1
        if listener.server is not None:
            listener.server.connection_closed()
        tunnel, self.tunnel = self.tunnel, None
        if tunnel is not None:
            tunnel.close()
        for ex in list(self.queue):
            ex.abort()
        self.queue.clear()
        if self.upgrading is not None:
            self.upgrading.abort()

    def eof_received(self) -> bool:
        self.eof = True
        if self.tunnel is not None:
            ex = self.queue[0] if self.queue else None
            up = ex.up if ex is not None else None
            if up is None or up.eof or not self.tunnel.transport.can_write_eof():
                if up is not None:
                    up.close()
                return False  # both directions ended: close both
            self.tunnel.flush()
            self.tunnel.transport.write_eof()
            return True
        return bool(self.queue)  # keep the socket open to answer what was asked

    def pause_writing(self) -> None:
        self.write_paused = True
        ex = self.queue[0] if self.queue else self.upgrading
        up = ex.up if ex is not None else None
        if up is not None:
            up.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        ex = self.queue[0] if self.queue else self.upgrading
        up = ex.up if ex is not None else None
        if up is not None:
            up.resume_reading()

    def pause(self, reason: int) -> None:
        if not self.paused and not self.closed:
            self.transport.pause_reading()
        self.paused |= reason

    def resume(self, reason: int) -> None:
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and not self.closed:
                self.transport.resume_reading()

    def close(self) -> None:
        self.fast = None
        if not self.closed:
            self.closed = True
            self.out.close()

    def idle_tick(self, options: ProxyOptions, now: float) -> None:
        """Once a second: close a keep-alive connection idle too long; 408 a request head that is too slow
        (however busy the client keeps it: slowloris); end the linger of a refused connection."""
        if self.linger:
            self.linger -= 1
            if not self.linger:
                self.close()
            return
        if self.head_since and now - self.head_since >= options.header_timeout and not self.closed:
            self.refuse(408, f"request head not received within {options.header_timeout:g}s")
            return
        if self.active:
            self.active = False
            self.quiet = 0
            return
        self.quiet += 1
        if self.tunnel is not None or self.closed:
            return
        if not self.queue and self.quiet >= options.client_idle_timeout:
            self.close()

    # --- reading requests -------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self.active = True
        fast = self.fast
        if fast is not None and self.idle_parser and not self.queue and self._from_memo(fast, data):
            return
        if self.tunnel is not None:
            self.tunnel.write(data)
        elif self.upgrading is not None:
            self.upgrading.early = [*self.upgrading.early, data]
            self.pause(PAUSE_UPGRADE)
        elif self.linger or self.closed:
            pass  # refused: what the client still sends is read and dropped
        elif not (self.idle_parser or self.head_open) or self._head_within_bounds(data):
            self._feed(data, learn=fast is not None and self.idle_parser and not self.queue)

    def _from_memo(self, fast: dict[bytes, Memo], data: bytes) -> bool:
        """The request memo: these exact bytes came before on this connection, from the same parser state
        (between requests), and the general path found them one whole simple request (origin-form target,
        HTTP/1.1, keep-alive, no body, no Upgrade/Expect/Transfer-Encoding: see _learn): it would do the same
        again, so send the head it built then. The parser is not fed (it stays between requests)."""
        hit = fast.get(data)
        if hit is not None:
            self.unrepeated = 0
        elif self.learning and self.fast_blocks:  # a header block seen before, after another simple request line?
            hit = self._pair_block(fast, data)
            if hit is not None:
                self.unrepeated = 0
        if hit is None:  # a request of the simple shape (heads that vary on every request meet this path)
            hit = self._simple(data) if self.simple_shapes else None
            if hit is None:
                return False
            if self.learning and len(data) <= FAST_REQUEST_MAX_BYTES:  # (the memo repeats it at less cost)
                if self.unrepeated >= FAST_REQUESTS_PER_CONNECTION:
                    self.learning = False  # (nothing learnt repeated: heads that vary on every request)
                else:
                    self.unrepeated += 1
                    if len(fast) >= FAST_REQUESTS_PER_CONNECTION:
                        fast.clear()
                    fast[data] = hit
        head, method, method_idx, host, plain = hit
        listener = self.listener
        routes = listener.routes
        start = len(method) + 1  # (the request target, for an Ingress listener)
        route = routes[0] if len(routes) == 1 else listener.route(host, head[start : head.find(b" ", start)])
        if route is None:
            return False
        fx = self.spare
        if fx is None:
            fx = Exchange(self, b"")
            fx.started = True
        else:  # the last memo exchange, finished
            self.spare = None
            fx.reuse()
        fx.method = method
        fx.method_idx = method_idx
        fx.head = head
        fx.plain = plain
        self.queue.append(fx)
        self.cur = fx
        fx.dispatch(route)
        fx.req_done = True  # (after dispatch, as in the general path: the message ends after)
        return True

    def _simple(self, data: bytes) -> Memo | None:
        """What the general path would make of `data` if it is one whole request head of the simple shape
        (simple.simple_request): its header lines as received, then the forwarding headers."""
        options = self.listener.options
        size = len(data)
        # (a head of the simple shape has at least 5 bytes a header line: a short one cannot have too many)
        if size > options.max_header_bytes or (
            size > 5 * options.max_headers and data.count(b"\n") > options.max_headers + 2
        ):
            return None  # (the general path refuses it)
        parsed = simple_request(data)
        if parsed is None:
            return None
        method, host = parsed
        fwd = self.fwd
        if host != self.fwd_host or fwd is None:
            self.fwd_host = host
            fwd = self.fwd = forwarding_headers(self.peer_ip, host, self.listener.forwarded_proto)
        self.last_host = host
        return data[:-2] + fwd, method, METHOD_INDEX[method], host, method != b"HEAD"

    def _pair_block(self, fast: dict[bytes, Memo], data: bytes) -> Memo | None:
        m = _FAST_REQUEST_LINE.match(data)
        if m is None:
            return None
        block = self.fast_blocks.get(data[m.end() :])
        if block is None:
            return None
        method = m.group(1)
        head = method + b" " + m.group(2) + b" HTTP/1.1\r\n" + block[0]
        hit = (head, method, METHOD_INDEX[method], block[1], method != b"HEAD")
        if len(data) <= FAST_REQUEST_MAX_BYTES:
            if len(fast) >= FAST_REQUESTS_PER_CONNECTION:
                fast.clear()
            fast[data] = hit
        return hit

    def _feed(self, data: bytes, *, learn: bool) -> None:
        """The general path: llhttp, its callbacks below."""
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as e:
            self.idle_parser = False
            self.fast = None
            ex = self.cur
            if ex is not None and not ex.done:
                self.upgrading = ex
                tail = data[e.args[0] :]
                if tail:
                    ex.early = [*ex.early, tail]
            return
        except HttpParserError as e:
            self.idle_parser = False
            self.fast = None
            if isinstance(e.__context__, HeadTooLarge):  # raised by on_headers_complete
                self.refuse(431, str(e.__context__))
            else:
                self.refuse(400, f"bad request: {e}")
            return
        if learn and self.learning and self.idle_parser and len(self.queue) == 1:
            self._learn(data)

    def _learn(self, data: bytes) -> None:
        """After the general path handled `data` from a parser between requests: if `data` was exactly one
        whole request that the memo can repeat, remember what the general path made of it."""
        if self.unrepeated >= FAST_REQUESTS_PER_CONNECTION:
            # nothing learnt repeated: a client whose heads all differ (a request id, a fresh cookie) only
            # pays for learning and lookups; the memo is off for the rest of this connection
            self.learning = False
            return
        ex = self.queue[0]
        if (
            ex is self.cur
            and ex.started
            and not ex.done
            and ex.service is not None
            and ex.keep_alive
            and not ex.upgrade
            and ex.version == "1.1"
            and not ex.expect
            and not ex.chunked_req
            and ex.replay == ()  # no body bytes
            and len(data) <= FAST_REQUEST_MAX_BYTES
            and data.find(b"\r\n\r\n") == len(data) - 4  # one request head, nothing after it
            and data[data.find(b" ") + 1 : data.find(b" ") + 2] == b"/"  # origin-form target (kept as is)
            and b"\n " not in data
            and b"\n\t" not in data  # no obs-fold (llhttp refuses it today: belt and braces)
            and not self.closing
            and self.fast is not None
        ):
            fast = self.fast
            self.unrepeated += 1
            if len(fast) >= FAST_REQUESTS_PER_CONNECTION:
                fast.clear()
            method: bytes = ex.method  # type: ignore[assignment]
            fast[data] = (ex.head, method, ex.method_idx, self.last_host, method != b"HEAD")
            m = _FAST_REQUEST_LINE.match(data)
            if m is not None and m.end() == data.find(b"\r\n") + 2:
                blocks = self.fast_blocks
                if len(blocks) >= FAST_REQUESTS_PER_CONNECTION:
                    blocks.clear()
                blocks[data[m.end() :]] = (ex.head[ex.head.find(b"\r\n") + 2 :], self.last_host)

    # --- bounds and refusals ----------------------------------------------------------------------------
    def _head_within_bounds(self, data: bytes) -> bool:
        """Count `data` towards the request head being received (nginx's large_client_header_buffers); False
        (and refused with a 431) once it is too large. The head's clock starts with its first bytes."""
        end = data.find(b"\r\n\r\n")
        size = self.head_size + (len(data) if end < 0 else end + 4)
        limit = self.listener.options.max_header_bytes
        if size > limit:
            self.refuse(431, f"request head larger than {limit} bytes")
            return False
        self.head_size = size if end < 0 else 0
        if not self.head_since:
            self.head_since = monotonic()
        return True

    def refuse(self, status: int, why: str) -> None:
        """Bad input (400), too large (431) or too slow (408): answer it if nothing is in progress (else finish
        the request in progress), then close. The client's further bytes are read and dropped for a moment
        (a lingering close, as nginx does), so it reads the answer instead of a reset."""
        self.fast = None
        if self.closed or self.linger:
            return
        self.head_since = 0.0
        head = self.queue[0] if self.queue else None
        active = head if head is not None and head.started and not head.done else None
        for ex in list(self.queue):
            if ex is not active:
                ex.abort()
        self.queue = deque([active]) if active is not None else deque()
        self.closing = True
        if active is not None:
            self.pause(PAUSE_PIPELINE)
            return
        self.out.write(error_response(status, why, close=True))
        self.out.flush()
        transport = self.transport
        if self.paused:
            self.paused = 0
            transport.resume_reading()
        if transport.can_write_eof():
            transport.write_eof()
            self.linger = LINGER_SECONDS
        else:
            self.close()

    # --- parser callbacks -------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.idle_parser = False
        self.head_open = True

    def on_url(self, url: bytes) -> None:
        ex = self.cur
        if ex is None or ex.method is not None:  # a new request
            ex = self.cur = Exchange(self, url)
            queue = self.queue
            queue.append(ex)
            if len(queue) > PIPELINE_LIMIT:
                self.pause(PAUSE_PIPELINE)
        else:
            ex.url += url  # the target arrived in pieces

    def on_header(self, name: bytes, value: bytes) -> None:
        self.cur.headers.append((name, value))  # type: ignore[union-attr]

    def on_headers_complete(self) -> None:
        ex = self.cur
        assert ex is not None
        self.head_open = False
        self.head_since = 0.0
        if len(ex.headers) > self.listener.options.max_headers:
            raise HeadTooLarge(f"more than {self.listener.options.max_headers} header fields")
        p = self.parser
        ex.method = p.get_method()
        ex.keep_alive = p.should_keep_alive()
        ex.upgrade = p.should_upgrade()
        if self.queue[0] is ex and not self._advancing:
            ex.version = None  # start() reads it from the parser if it can matter (it is slow to read)
            ex.start()
        else:
            ex.version = p.get_http_version()

    def on_body(self, body: bytes) -> None:
        self.cur.request_body(body)  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        self.idle_parser = True
        ex = self.cur
        if ex.chunked_req or ex.done:  # type: ignore[union-attr]
            ex.request_done()  # type: ignore[union-attr]
        else:
            ex.req_done = True  # type: ignore[union-attr]  # request_done's common case

    # --- running the queue ------------------------------------------------------------------------------
    def finished(self, ex: Exchange) -> None:
        """`ex` has answered: pop it (its common case, else advance()), keep a memo exchange for reuse."""
        queue = self.queue
        if queue and queue[0] is ex and not self._advancing and not self.paused & PAUSE_PIPELINE:
            queue.popleft()
            if ex.close_after:
                self.close()
                return
            if ex.plain and not ex.retries and not ex.eof_body:
                self.spare = ex  # (nothing refers to it any more: the next memo request reuses it)
            if queue:
                self.advance()
            elif (self.eof or self.closing) and not self.closed and self.upgrading is None:
                self.close()
            return
        self.advance()

    def advance(self) -> None:
        """Start the head of the queue when its headers are in; pop finished exchanges; close when asked."""
        if self._advancing:
            return
        self._advancing = True
        try:
            queue = self.queue
            while queue and not self.closed:
                ex = queue[0]
                if ex.done:
                    queue.popleft()
                    if ex.close_after:
                        self.close()
                        return
                    if self.paused & PAUSE_PIPELINE and len(queue) <= PIPELINE_LIMIT // 2:
                        self.resume(PAUSE_PIPELINE)
                    continue
                if not ex.started and ex.method is not None:
                    ex.start()
                    continue
                break
            if not queue and (self.eof or self.closing) and not self.closed and self.upgrading is None:
                self.close()
        finally:
            self._advancing = False

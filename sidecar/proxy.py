"""The proxy hot path: HTTP/1.1 on asyncio Protocols with the httptools (llhttp) parser.

One `ClientConnection` per downstream connection parses requests into `Exchange`s (in order, so pipelined
requests are answered in order); each Exchange picks an endpoint, borrows a pooled keep-alive
`UpstreamConnection` (or connects), streams the request body up and the response body down, with
back-pressure both ways (pause_reading when the other side's write buffer is full). Writes made while a
`data_received` runs are corked and sent in one `write()` at its end (fewer syscalls).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from httptools import HttpRequestParser, HttpResponseParser, parse_url
from httptools.parser.errors import HttpParserError, HttpParserUpgrade

from .balancer import RoundRobin
from .http import HOP_BY_HOP, connection_tokens, error_response, forwarded_for, service_hostnames, split_host
from .retry import IDEMPOTENT, RETRYABLE_STATUS
from .services import (
    BUCKETS,
    METHOD_INDEX,
    OTHER_METHOD,
    OUT_5XX,
    OUT_CONNECT,
    OUT_CONNECTION,
    OUT_SUCCESS,
    OUT_TIMEOUT,
    EndpointState,
    ServiceState,
)

if TYPE_CHECKING:
    from .protocols import Protocol

log = logging.getLogger(__name__)
monotonic = time.monotonic
BUCKET_0, BUCKET_1, BUCKET_2, BUCKET_3 = BUCKETS[:4]  # the latency histogram's first bounds (inline bisect)

PIPELINE_LIMIT = 32  # queued requests on one connection before we stop reading from it
PENDING_LIMIT = 64 * 1024  # request body buffered before an upstream is attached
REPLAY_LIMIT = 64 * 1024  # request body kept to replay on a retry
WRITE_HIGH = 256 * 1024  # transport write buffer high-water mark
MAX_IDLE_PER_ENDPOINT = 128
FAST_REQUESTS_PER_CONNECTION = 8  # distinct request heads a connection's fast path remembers ...
FAST_REQUEST_MAX_BYTES = 1024  # ... each at most this long (bigger ones, e.g. with cookies, are not kept)
# a request line the fast path may pair with a header block learnt from another request line: a method
# without a body of its own, an origin-form target of RFC 3986 characters (a subset of what llhttp accepts)
_FAST_REQUEST_LINE = re.compile(
    rb"(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH) (/[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]*) HTTP/1\.1\r\n"
)

PAUSE_PIPELINE, PAUSE_BODY, PAUSE_UPSTREAM, PAUSE_UPGRADE = 1, 2, 4, 8
# response framing towards the client
R_NONE, R_LENGTH, R_CHUNKED, R_CLOSE = 0, 1, 2, 3
CONTINUE_100 = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass
class ProxyOptions:
    fail_fast: float = 1.0  # seconds a request waits for a ready endpoint before a 503
    connect_timeout: float = 3.0
    idle_timeout: float = 30.0  # upstream keep-alive connections idle longer are closed
    client_idle_timeout: float = 75.0  # client keep-alive connections with nothing to do (nginx's default)
    header_timeout: float = 30.0  # a client that takes longer to send a request head gets a 408
    zone: str = "cluster.local"
    detect_timeout: float = 0.3  # DETECT ports: a client silent this long is opaque TCP (server speaks first)
    tcp_idle_timeout: float = 3600.0  # opaque TCP connections with no byte either way are closed
    udp_idle_timeout: float = 30.0  # UDP flows with no datagram either way are forgotten


class ProcessStats:
    """Process-wide plain counters."""

    active_connections = 0


STATS = ProcessStats()


# --- writes -----------------------------------------------------------------------------------------------
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


# --- routing ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    service: ServiceState
    port_name: str | None  # None: the Service's first port


class Listener:
    """One listening address: the Services reachable there (several -> routed by Host) and its connections."""

    def __init__(
        self, host: str, port: int, *, routes: list[Route], options: ProxyOptions | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.options = options or ProxyOptions()
        self.connections: set[ClientConnection] = set()
        # connections of the other codecs and those still detecting: each has idle_tick(quiet_limit) and close()
        self.streams: set[Any] = set()
        self.protocol: Protocol = None  # type: ignore[assignment]  # set_routes: what this port carries ...
        self.accept: Callable[[], asyncio.BaseProtocol] = None  # type: ignore[assignment]  # ... its codec
        self.server: asyncio.base_events.Server | None = None
        self.routes: list[Route] = []
        self.by_host: dict[bytes, Route] = {}
        self.local_names: set[bytes] = {b"localhost", host.encode(), b"127.0.0.1", b"::1"}
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.set_routes(routes)

    def set_routes(self, routes: list[Route]) -> None:
        self.routes = list(routes)
        by_host: dict[bytes, Route] = {}
        for route in routes:
            key = route.service.key
            for name in service_hostnames(key.name, key.namespace, self.options.zone):
                by_host.setdefault(name, route)
            info = route.service.info
            if info is not None and info.address:
                by_host.setdefault(info.address.encode(), route)
        self.by_host = by_host
        from .dispatch import acceptor  # dispatch imports the codecs, which import this module

        self.protocol, self.accept = acceptor(self)

    def route(self, host: bytes | None) -> Route | None:
        if len(self.routes) == 1:
            return self.routes[0]
        if host is None:
            return None
        return self.by_host.get(split_host(host))

    def allowed_authority(self, host: bytes) -> bool:
        """May an absolute-form request name this host? Only the Services here (and this listener)."""
        name = split_host(host)
        return name in self.by_host or name in self.local_names

    async def start(self, *, reuse_port: bool = False, freebind: bool = False) -> None:
        """Listen. `freebind`: bind even if the address is not (yet) on an interface (Linux IP_FREEBIND), so a
        Service address the agent adds a moment later needs no retry."""
        loop = self.loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if freebind and family == socket.AF_INET:
                sock.setsockopt(socket.SOL_IP, getattr(socket, "IP_FREEBIND", 15), 1)
            sock.bind((self.host, self.port))
            sock.listen(1024)
            sock.setblocking(False)
            self.server = await loop.create_server(lambda: self.accept(), sock=sock)
        except BaseException:
            sock.close()
            raise
        TICKER.add(self, loop)

    def tick(self, now: float, idle_scan: bool) -> None:
        """Request timeouts; with `idle_scan` (once a second) idle client connections and slow request heads."""
        for conn in list(self.connections):
            queue = conn.queue
            if queue:
                ex = queue[0]
                if 0.0 < ex.deadline <= now and not ex.done:
                    ex.on_timeout()
            if idle_scan:
                conn.idle_tick(self.options)
        if idle_scan:
            for stream in list(self.streams):
                stream.idle_tick(self.options)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let in-flight requests finish (at most `grace` seconds), then close."""
        if self.server is not None:
            self.server.close()
        deadline = monotonic() + grace
        for conn in list(self.connections):
            conn.closing = True
            conn.fast = None
            if not conn.queue:
                conn.close()
        for stream in list(self.streams):
            drain = getattr(stream, "drain", None)
            if drain is not None:
                drain()  # HTTP/2: GOAWAY; its in-flight streams finish, then it closes
        while monotonic() < deadline and (
            any(c.queue and not c.queue[0].tunnelled for c in self.connections) or self.streams
        ):
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.close()
        for stream in list(self.streams):
            stream.close()
        TICKER.discard(self)


class Ticker:
    """One task for all the listeners of a process: timeouts checked every `interval` (cheaper than a timer
    per request, at most `interval` late), idle connections once a second."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.listeners: set[Listener] = set()
        self.task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def add(self, listener: Listener, loop: asyncio.AbstractEventLoop) -> None:
        self.listeners.add(listener)
        if self.task is None or self.task.done() or self.loop is not loop:
            self.loop = loop
            self.task = loop.create_task(self._run())

    def discard(self, listener: Listener) -> None:
        self.listeners.discard(listener)
        if not self.listeners and self.task is not None:
            self.task.cancel()
            self.task = None

    async def _run(self) -> None:
        ticks = 0
        per_second = max(1, round(1 / self.interval))
        while True:
            await asyncio.sleep(self.interval)
            ticks += 1
            now = monotonic()
            for listener in list(self.listeners):
                try:
                    listener.tick(now, ticks % per_second == 0)
                except Exception:  # one bad connection must not stop every timeout
                    log.exception("timeout scan failed on %s:%d", listener.host, listener.port)


TICKER = Ticker()


# --- downstream -------------------------------------------------------------------------------------------
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
        self.hval: tuple[bytes, bytes | None, bool, bool, bool] = (
            b"",
            None,
            False,
            False,
            False,
        )  # ... and what they gave
        self.active = False  # set on every read; the listener's once-a-second scan counts quiet seconds
        self.quiet = 0
        # the fast path (see data_received): requests this connection sent before, as bytes, that the general
        # path found simple, with what it made of them; None: off (closing, closed, tunnelled)
        self.fast: dict[bytes, tuple[bytes, bytes, int, bytes | None, bool]] | None = {}
        # ... and their header blocks (after the request line), to pair with another simple request line:
        # what the general path made of the block (the header lines for the endpoint) and its Host
        self.fast_blocks: dict[bytes, tuple[bytes, bytes | None]] = {}
        self.idle_parser = True  # the parser is between two requests (fed nothing since one ended)
        self.unrepeated = 0  # requests learnt since the fast path last hit (all differ: learning stops)
        self.last_host: bytes | None = None  # the Host of the last request start() routed
        self.spare: Exchange | None = None  # a finished fast-path exchange to reuse (the response fast path)

    # transport events
    def connection_made(self, transport: Any) -> None:
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
        self.listener.connections.discard(self)
        STATS.active_connections -= 1
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

    def idle_tick(self, options: ProxyOptions) -> None:
        """Once a second: close a keep-alive connection idle too long; 408 a request head that is too slow."""
        if self.active:
            self.active = False
            self.quiet = 0
            return
        self.quiet += 1
        if self.tunnel is not None or self.closed:
            return
        queue = self.queue
        if not queue:
            if self.quiet >= options.client_idle_timeout:
                self.close()
        elif not queue[0].started and self.quiet >= options.header_timeout:
            queue[0].abort()
            queue.clear()
            self.out.write(error_response(408, "request head not received in time", close=True))
            self.close()

    def data_received(self, data: bytes) -> None:
        self.active = True
        fast = self.fast
        if fast is not None and self.idle_parser and not self.queue:
            # The fast path: these exact bytes came before on this connection, from the same parser state
            # (between requests), and the general path found them one whole simple request (origin-form
            # target, HTTP/1.1, keep-alive, no body, no Upgrade/Expect/Transfer-Encoding: see _learn): it
            # would do the same again, so send the head it built then. The parser is not fed (it stays
            # between requests).
            hit = fast.get(data)
            if hit is None:  # a header block seen before, after another simple request line?
                m = _FAST_REQUEST_LINE.match(data)
                if m is not None:
                    block = self.fast_blocks.get(data[m.end() :])
                    if block is not None:
                        method = m.group(1)
                        head = method + b" " + m.group(2) + b" HTTP/1.1\r\n" + block[0]
                        hit = (head, method, METHOD_INDEX[method], block[1], method != b"HEAD")
                        if len(data) <= FAST_REQUEST_MAX_BYTES:
                            if len(fast) >= FAST_REQUESTS_PER_CONNECTION:
                                fast.clear()
                            fast[data] = hit
            if hit is not None:
                self.unrepeated = 0
                head, method, method_idx, host, plain = hit
                listener = self.listener
                routes = listener.routes
                route = routes[0] if len(routes) == 1 else listener.route(host)
                if route is not None:
                    fx = self.spare
                    if fx is None:
                        fx = Exchange(self, b"")
                        fx.started = True
                    else:  # the last fast exchange, finished: what its life changed back to new
                        self.spare = None
                        fx.done = fx.head_sent = fx.req_done = False
                        fx.status = 0
                        fx.deadline = 0.0
                        fx.pending = ()
                    fx.method = method
                    fx.method_idx = method_idx
                    fx.head = head
                    fx.plain = plain
                    self.queue.append(fx)
                    self.cur = fx
                    fx.dispatch(route)
                    fx.req_done = True  # (after dispatch, as in the general path: the message ends after)
                    return
        if self.tunnel is not None:
            self.tunnel.write(data)
            return
        if self.upgrading is not None:
            self.upgrading.early = [*self.upgrading.early, data]
            self.pause(PAUSE_UPGRADE)
            return
        learn = fast is not None and self.idle_parser and not self.queue
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
            self._bad_request(str(e))
            return
        if learn and self.idle_parser and len(self.queue) == 1:
            self._learn(data)

    def _learn(self, data: bytes) -> None:
        """After the general path handled `data` from a parser between requests: if `data` was exactly one
        whole request that the fast path can repeat, remember what the general path made of it."""
        if self.unrepeated >= FAST_REQUESTS_PER_CONNECTION:
            # nothing learnt repeated: a client whose heads all differ (a request id, a fresh cookie) only
            # pays for learning and lookups; the fast path is off for the rest of this connection
            self.fast = None
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

    def _bad_request(self, why: str) -> None:
        """Unparsable input: answer 400 if nothing is in progress, else finish the request in progress and close."""
        self.fast = None
        if self.closed:
            return
        head = self.queue[0] if self.queue else None
        active = head if head is not None and head.started and not head.done else None
        for ex in list(self.queue):
            if ex is not active:
                ex.abort()
        self.queue = deque([active]) if active is not None else deque()
        self.closing = True
        self.pause(PAUSE_PIPELINE)
        if active is None:
            self.out.write(error_response(400, f"bad request: {why}", close=True))
            self.close()

    # parser callbacks
    def on_message_begin(self) -> None:
        self.idle_parser = False

    def on_url(self, url: bytes) -> None:
        ex = self.cur
        if ex is None or ex.method is not None:  # a new request
            ex = self.cur = Exchange(self, url)
            queue = self.queue
            queue.append(ex)
            if len(queue) > PIPELINE_LIMIT:
                self.pause(PAUSE_PIPELINE)
        else:
            ex.url += url  # type: ignore[operator]  # the target arrived in pieces

    def on_header(self, name: bytes, value: bytes) -> None:
        self.cur.headers.append((name, value))  # type: ignore[union-attr]

    def on_headers_complete(self) -> None:
        ex = self.cur
        assert ex is not None
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

    # running the queue
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


# --- one request ------------------------------------------------------------------------------------------
class Exchange:
    """One request/response: routing, endpoint choice, retries, timeout, and the byte streams both ways."""

    __slots__ = (
        "chunked_req",
        "close_after",
        "conn",
        "connecting",
        "deadline",
        "done",
        "early",
        "eof_body",
        "ep",
        "expect",
        "head",
        "head_sent",
        "headers",
        "keep_alive",
        "method",
        "method_idx",
        "pending",
        "pending_size",
        "plain",
        "port",
        "port_name",
        "replay",
        "replay_size",
        "req_done",
        "resp_mode",
        "retries",
        "sent_continue",
        "service",
        "started",
        "status",
        "t0",
        "t_attempt",
        "tried",
        "tunnelled",
        "up",
        "upgrade",
        "url",
        "version",
        "waiter",
    )  # fmt: skip

    def __init__(self, conn: ClientConnection, url: bytes) -> None:
        # not set here (read only once start() has set them): head, method_idx, port_name, port
        self.conn = conn
        self.method: bytes | None = None
        self.url = url
        self.headers: list[tuple[bytes, bytes]] = []
        self.version: str | None = "1.1"  # None from the head until start() reads it
        self.keep_alive = True
        self.upgrade = False
        self.started = self.done = self.close_after = self.req_done = self.head_sent = False
        # (lists created on the first chunk: most requests have no body)
        self.pending: list[bytes] | tuple[()] | None = ()
        self.pending_size = 0
        self.replay: list[bytes] | tuple[()] | None = ()
        self.replay_size = 0
        self.chunked_req = self.expect = self.sent_continue = self.tunnelled = self.eof_body = False
        self.service: ServiceState | None = None
        self.ep: EndpointState | None = None
        self.up: UpstreamConnection | None = None
        self.tried: set[EndpointState] | None = None
        self.retries = 0
        self.deadline = 0.0  # monotonic time of the timeout (0: none); the listener's ticker checks it
        self.waiter: asyncio.TimerHandle | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.t0 = self.t_attempt = 0.0
        self.status = 0
        self.resp_mode = R_NONE
        self.early: list[bytes] | tuple[()] = ()
        self.plain = False  # a fast-path request whose response may take the fast path (not HEAD)

    # --- request side -----------------------------------------------------------------------------------
    def start(self) -> None:
        self.started = True
        conn = self.conn
        listener = conn.listener
        method = self.method
        self.method_idx = METHOD_INDEX.get(method, OTHER_METHOD)  # type: ignore[arg-type]
        if method == b"CONNECT":
            self.local_reply(405, "CONNECT is not allowed: meshd-sidecar is not an open proxy", close=True)
            return
        url = self.url or b"/"
        if url[:1] != b"/" and url != b"*":
            try:
                parsed: Any = parse_url(url)  # Any: the stub says bytes/int, but absent parts are None
            except HttpParserError:
                self.local_reply(400, "bad request target", close=True)
                return
            authority = parsed.host or b""
            if parsed.port:
                authority += b":%d" % parsed.port
            if not parsed.host or not listener.allowed_authority(authority):
                self.local_reply(
                    403,
                    f"refused: {authority.decode(errors='replace')} is not a Service here "
                    "(meshd-sidecar is not an open proxy)",
                    close=not self.req_done,
                )
                return
            self.url = (parsed.path or b"/") + (b"?" + parsed.query if parsed.query else b"")
            self.headers = [(n, v) for n, v in self.headers if n.lower() != b"host"] + [(b"Host", authority)]
        # keep-alive clients mostly repeat the same headers: reuse the rewritten header block
        if self.headers == conn.hkey and not self.upgrade:
            rest, host, self.chunked_req, self.expect, has_connection = conn.hval
        else:
            rest, host, has_connection = self._build_headers()
            if not self.upgrade:
                conn.hkey = self.headers
                conn.hval = (rest, host, self.chunked_req, self.expect, has_connection)
        if self.version is None:
            # llhttp keeps an HTTP/1.0 (or 0.9, 2.0) request alive only with a Connection (or Proxy-Connection)
            # header: without one, a keep-alive request is HTTP/1.1
            if has_connection or not self.keep_alive:
                self.version = conn.parser.get_http_version()
            else:
                self.version = "1.1"
        self.head = b"%s %s HTTP/1.1\r\n%s" % (method, self.url or b"/", rest)
        conn.last_host = host
        routes = listener.routes
        route = routes[0] if len(routes) == 1 else listener.route(host)
        if route is None:
            shown = host.decode(errors="replace") if host else "(no Host header)"
            self.local_reply(
                404,
                f"no Service for host {shown} on {listener.host}:{listener.port}",
                close=not self.req_done,
            )
            return
        self.dispatch(route)

    def dispatch(self, route: Route) -> None:
        """Count the request, pick an endpoint and send the head (`self.head`, ready) on a pooled connection
        (or connect): the part of start() the fast path shares."""
        conn = self.conn
        svc = route.service
        self.service = svc
        self.port_name = route.port_name if route.port_name is not None else svc.default_port_name
        self.t0 = now = monotonic()
        svc.stats.in_flight += 1
        budget = svc.budget  # budget.deposit(now), inlined
        if budget._slot_start <= now < budget._slot_end:
            budget.current += 1
        else:
            budget.deposit(now)
        timeout = svc.config.timeout
        if timeout is not None:
            self.deadline = now + timeout
        # attempt(), inlined for the common case: round robin, a pooled connection, no body buffered yet
        ep = None
        if svc._eject_expiry is None:  # (svc.pick, inlined)
            available = svc.available
            n = len(available)
            if n == 1:
                ep = available[0]
            elif n:
                balancer = svc.balancer
                if type(balancer) is RoundRobin:
                    i = balancer._next % n
                    balancer._next = i + 1
                    ep = available[i]
        if ep is not None:
            port_name = self.port_name
            port = ep.ports.get(port_name) if port_name is not None else None
            idle = ep.idle.get(port) if port is not None else None  # type: ignore[arg-type]
            if idle and not (self.pending or self.req_done or conn.write_paused):
                up = idle[-1]
                if not up.closed and up.out.buf is None:
                    idle.pop()
                    ep.in_flight += 1
                    self.ep = ep
                    self.port = port  # type: ignore[assignment]
                    if svc.uses_rtt:
                        self.t_attempt = now
                    self.up = up  # attach(up), inlined: the request head goes out alone
                    up.exchange = self
                    up.in_head = True  # (a pooled connection's hbuf and hoff were reset at its last head)
                    self.pending = None
                    up.transport.write(self.head)
                    if self.expect and not self.sent_continue and self.version == "1.1":
                        self.sent_continue = True
                        conn.out.write(CONTINUE_100)
                    return
            self._attempt_on(ep)
            return
        self.attempt()

    def request_body(self, chunk: bytes) -> None:
        replay = self.replay
        if replay is not None:
            self.replay_size += len(chunk)
            if self.replay_size > REPLAY_LIMIT:
                self.replay = None
            elif replay:
                replay.append(chunk)  # type: ignore[union-attr]
            else:
                self.replay = [chunk]
        pending = self.pending
        if pending is not None:
            if pending:
                pending.append(chunk)  # type: ignore[union-attr]
            else:
                self.pending = [chunk]
            self.pending_size += len(chunk)
            if self.pending_size > PENDING_LIMIT:
                self.conn.pause(PAUSE_BODY)
        elif self.up is not None:
            self._send_body(self.up.out, chunk)
        # else: answered already (local reply); the rest of the body is read and dropped

    def _send_body(self, out: Writer, chunk: bytes) -> None:
        if self.chunked_req:
            out.write(b"%x\r\n" % len(chunk))
            out.write(chunk)
            out.write(b"\r\n")
        else:
            out.write(chunk)

    def request_done(self) -> None:
        self.req_done = True
        up = self.up
        if up is not None and self.pending is None and self.chunked_req:
            up.out.write(b"0\r\n\r\n")
        if self.done:
            self.conn.advance()

    # --- choosing and reaching an endpoint --------------------------------------------------------------
    def attempt(self) -> None:
        svc = self.service
        assert svc is not None
        ep = svc.pick(self.tried)
        if ep is None:
            self._wait_for_endpoint()
            return
        self._attempt_on(ep)

    def _attempt_on(self, ep: EndpointState) -> None:
        svc = self.service
        assert svc is not None
        port_name = self.port_name
        port = ep.ports.get(port_name) if port_name is not None else None  # svc.target_port's common case
        if port is None:
            port = svc.target_port(ep, port_name)
            if port is None:
                self.local_reply(
                    502, f"endpoint {ep.name} of {svc.label} has no port {port_name or ''}", close=True
                )
                return
        ep.in_flight += 1
        self.ep = ep
        self.port = port
        if svc.uses_rtt:
            self.t_attempt = monotonic()
        idle = ep.idle.get(port)
        while idle:
            up = idle.pop()
            if not up.closed:
                if self.pending or self.req_done or self.conn.write_paused or up.out.buf is not None:
                    self.attach(up)
                    return
                # attach(up), inlined for the common case: nothing buffered, the request head goes out alone
                self.up = up
                up.exchange = self
                up.in_head = True
                up.hbuf = b""
                up.hoff = 0
                self.pending = None
                up.transport.write(self.head)  # (up.out is open: up is not closed)
                if self.expect and not self.sent_continue and self.version == "1.1":
                    self.sent_continue = True
                    self.conn.out.write(CONTINUE_100)
                return
        self.connecting = self.conn.listener.loop.create_task(self._connect(ep, port))

    def _wait_for_endpoint(self) -> None:
        svc = self.service
        assert svc is not None
        if self.waiter is not None:
            return
        self.waiter = self.conn.listener.loop.call_later(
            self.conn.listener.options.fail_fast, self._no_endpoint
        )
        svc.waiters.append(self._endpoint_ready)

    def _endpoint_ready(self) -> None:
        if self.waiter is None or self.done:
            return
        self.waiter.cancel()
        self.waiter = None
        self.attempt()

    def _no_endpoint(self) -> None:
        self.waiter = None
        svc = self.service
        assert svc is not None
        if self.done:
            return
        if self._endpoint_ready in svc.waiters:
            svc.waiters.remove(self._endpoint_ready)
        if not svc.exists:
            why = f"no ready endpoints for {svc.label}: the Service does not exist (yet)"
        elif svc.ready_count and not svc.available:
            why = f"no ready endpoints for {svc.label}: all {svc.ready_count} ready endpoints are ejected"
        else:
            why = f"no ready endpoints for {svc.label}"
        self.local_reply(503, why, close=not self.req_done)

    async def _connect(self, ep: EndpointState, port: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.conn.listener.options.connect_timeout):
                _, up = await loop.create_connection(lambda: UpstreamConnection(ep, port), ep.address, port)
        except asyncio.CancelledError:
            raise
        except (OSError, TimeoutError) as e:
            if self.ep is ep and not self.done:
                self.connecting = None
                self._attempt_failed(OUT_CONNECT, f"cannot connect to {ep.address}:{port}: {e or 'timeout'}")
            return
        self.connecting = None
        if self.ep is not ep or self.done:
            up.release()
            return
        self.attach(up)

    def attach(self, up: UpstreamConnection) -> None:
        """Send the request head and whatever body is buffered; from now on the body streams."""
        self.up = up
        up.exchange = self
        up.in_head = True
        up.hbuf = b""
        up.hoff = 0
        conn = self.conn
        if conn.write_paused:
            up.pause_reading()
        out = up.out
        pending = self.pending
        self.pending = None
        if pending or (self.req_done and self.chunked_req):
            gather = out.buf is None
            if gather:
                out.buf = []  # head and buffered body leave in one write
            out.write(self.head)
            for chunk in pending or ():
                self._send_body(out, chunk)
            if self.req_done and self.chunked_req:
                out.write(b"0\r\n\r\n")
            if gather:
                out.flush()
        elif out.buf is None and not out.closed:
            up.transport.write(self.head)  # Writer.write, inlined
        else:
            out.write(self.head)
        if not self.req_done and self.expect and not self.sent_continue and self.version == "1.1":
            self.sent_continue = True
            conn.out.write(CONTINUE_100)
        if self.pending_size:
            self.pending_size = 0
            conn.resume(PAUSE_BODY)

    def _build_headers(self) -> tuple[bytes, bytes | None, bool]:
        """The header block for the endpoint (hop-by-hop out, forwarding headers in) and the Host.

        One pass over the headers, which also notes chunked framing, Expect and whether Connection is there."""
        parts: list[bytes] = [b"", b"", b"", b""]  # keeps header groups at offsets 4k for _drop_headers
        xff = fwd = None
        drop: set[bytes] | None = None
        host = None
        has_connection = False
        for name, value in self.headers:
            n = name.lower()
            if n in HOP_BY_HOP:
                if n == b"connection" or n == b"proxy-connection":
                    has_connection = True
                if n == b"transfer-encoding":
                    self.chunked_req = b"chunked" in value.lower()
                elif n == b"connection":
                    tokens = connection_tokens(value) - HOP_BY_HOP
                    if tokens:
                        drop = tokens if drop is None else drop | tokens
                elif n == b"upgrade" and self.upgrade:
                    parts += (name, b": ", value, b"\r\n")
                continue
            if n == b"x-forwarded-for":
                xff = value if xff is None else xff + b", " + value
                continue
            if n == b"forwarded":
                fwd = value if fwd is None else fwd + b", " + value
                continue
            if n == b"expect":
                self.expect = value.strip().lower() == b"100-continue"
                continue
            if n == b"host":
                host = value
            parts += (name, b": ", value, b"\r\n")
        if drop:
            drop.discard(b"upgrade")
            if drop:
                parts = _drop_headers(parts, 4, drop)
        ip = self.conn.peer_ip.encode()
        parts += (b"X-Forwarded-For: ", xff + b", " + ip if xff else ip, b"\r\n")
        elem = b"for=" + forwarded_for(self.conn.peer_ip) + b";proto=http"
        if host:
            elem += b';host="' + host + b'"'
        parts += (b"Forwarded: ", fwd + b", " + elem if fwd else elem, b"\r\n")
        if self.chunked_req:
            parts.append(b"Transfer-Encoding: chunked\r\n")
        if self.upgrade:
            parts.append(b"Connection: upgrade\r\n")
        parts.append(b"\r\n")
        return b"".join(parts), host, has_connection

    # --- response side ----------------------------------------------------------------------------------
    def response_head(self, up: UpstreamConnection, status: int, raw: bytes) -> None:
        """`raw`: the response's status line and header lines as received (each ending in CRLF)."""
        svc = self.service
        ep = self.ep
        assert svc is not None and ep is not None
        if svc.uses_rtt:
            now = monotonic()
            ep.observe_rtt(now - self.t_attempt, now)
        if status >= 500:
            if status in RETRYABLE_STATUS and self._retry_allowed(connect_failed=False):
                svc.record(ep, OUT_5XX)
                self._detach_failed()
                self._retry()
                return
            svc.record(ep, OUT_5XX)
        elif ep.failing:
            svc.record(ep, OUT_SUCCESS)
        else:
            ep.outcomes[OUT_SUCCESS] += 1
        self.status = status
        # the timeout bounds the wait for the response head (retries included), like Linkerd's
        self.deadline = 0.0
        # framing of the response towards the client, from the raw header block (cached per distinct head)
        if status == 101:
            head, chunked, length, _ = _scan_response_head(raw, upgrade=True)
        else:
            hit = _HEAD_CACHE.get(raw)
            seen = hit is not None
            if hit is None:
                hit = _scan_response_head(raw, upgrade=False)
                if len(raw) <= HEAD_CACHE_MAX_BYTES:  # (big heads, e.g. with cookies, are not kept)
                    if len(_HEAD_CACHE) >= HEAD_CACHE_SIZE:
                        _HEAD_CACHE.clear()
                    _HEAD_CACHE[raw] = hit
            head, chunked, length, whole = hit
            if (
                length
                and not chunked
                and status < 300
                and status != 204
                and self.keep_alive
                and self.version == "1.1"
                and not self.upgrade
                and self.method != b"HEAD"
                and not self.conn.closing
            ):  # the common case, decided as below: the head goes out as received (minus hop-by-hop)
                if seen and up.keep_alive and raw not in _FAST_RESPONSES:
                    # a head seen twice is learnt for the fast path (once: a head that never repeats, e.g.
                    # with a request id, costs one cache entry, as for _scan_response_head, and no more)
                    _learn_response(raw, whole, status)
                self.resp_mode = R_LENGTH
                self.head_sent = True
                out = self.conn.out
                buf = out.buf
                if buf is not None:  # out.write(whole), inlined
                    buf.append(whole)
                else:
                    out.write(whole)
                return
        http10 = self.version == "1.0"
        extra = b""
        if status == 101:
            mode = R_NONE
            extra = b"Connection: upgrade\r\n"
        elif self.method == b"HEAD" or status in (204, 304) or status < 200:
            mode = R_NONE
        elif chunked:
            mode = R_CLOSE if http10 else R_CHUNKED
        elif length:
            mode = R_LENGTH
        else:
            mode = R_CLOSE if http10 else R_CHUNKED
            self.eof_body = True  # the endpoint ends the body by closing the connection
        if mode == R_CHUNKED:
            extra += b"Transfer-Encoding: chunked\r\n"
        if self.upgrade and status != 101:
            self.keep_alive = False  # the request parser already switched: no further requests on it
        if mode == R_CLOSE or not self.keep_alive or self.conn.closing:
            self.keep_alive = False
            if status != 101:
                extra += b"Connection: close\r\n"
        elif http10:
            extra += b"Connection: keep-alive\r\n"
        self.resp_mode = mode
        self.head_sent = True
        self.conn.out.write(head + extra + b"\r\n")

    def response_body(self, chunk: bytes) -> None:
        out = self.conn.out
        if self.resp_mode == R_CHUNKED:
            out.write(b"%x\r\n" % len(chunk))
            out.write(chunk)
            out.write(b"\r\n")
        else:
            out.write(chunk)

    def response_done(self, up: UpstreamConnection) -> None:
        if self.resp_mode == R_CHUNKED:
            self.conn.out.write(b"0\r\n\r\n")
        self.up = None
        up.exchange = None
        now = monotonic()
        if self.req_done:
            if up.keep_alive and self.pending is None:
                # up.release(now), inlined: back to the endpoint's idle pool
                ep = up.ep
                if up.read_paused:
                    up.resume_reading()
                idle = ep.idle.get(up.port)
                if up.closed or ep.removed or idle is None or len(idle) >= MAX_IDLE_PER_ENDPOINT:
                    up.release(now)
                else:
                    up.idle_since = now
                    idle.append(up)
            else:
                up.close()
        else:
            up.close()
            self.close_after = True
        self._finish(now)

    def upstream_upgraded(self, up: UpstreamConnection, tail: bytes) -> None:
        """The endpoint said 101: from now on both connections are a raw byte tunnel."""
        conn = self.conn
        if tail:
            conn.out.write(tail)
        self.tunnelled = True
        up.tunnel = conn.out
        conn.tunnel = up.out
        conn.upgrading = None
        for data in self.early:
            up.out.write(data)
        self.early = ()
        conn.resume(PAUSE_UPGRADE)
        self._observe()
        self.deadline = 0.0

    def upstream_lost(self, up: UpstreamConnection) -> None:
        """The endpoint closed the connection while this exchange used it."""
        if self.tunnelled:
            self.conn.close()
            self._release_endpoint()
            return
        if self.head_sent:
            if self.eof_body:  # a close-delimited body ends here: a normal end
                self.up = None
                if self.resp_mode == R_CHUNKED:
                    self.conn.out.write(b"0\r\n\r\n")
                else:
                    self.close_after = True
                self._finish()
                return
            svc, ep = self.service, self.ep
            if svc is not None and ep is not None:
                ep.outcomes[OUT_CONNECTION] += 1
            self.up = None
            self.close_after = True
            self.conn.close()  # the response is cut: the client must see the connection end
            self._finish()
            return
        self._attempt_failed(OUT_CONNECTION, "the endpoint closed the connection before responding")

    def upstream_failed(self, up: UpstreamConnection, why: str) -> None:
        up.abort()
        if self.up is up and not self.done:
            if self.head_sent:
                self.up = None
                self.close_after = True
                self.conn.close()
                self._finish()
            else:
                self._attempt_failed(OUT_CONNECTION, why)

    # --- failures, retries, timeouts --------------------------------------------------------------------
    def _retry_allowed(self, *, connect_failed: bool) -> bool:
        svc = self.service
        assert svc is not None
        if self.retries >= svc.config.retries or self.upgrade:
            return False
        if connect_failed:
            ok = self.pending is not None
        else:
            ok = self.method in IDEMPOTENT and self.req_done and self.replay is not None
        return ok and svc.budget.withdraw(monotonic())

    def _detach_failed(self) -> None:
        """Drop the failed attempt's connection and endpoint (remembered: a retry goes elsewhere)."""
        up = self.up
        self.up = None
        if up is not None:
            up.exchange = None
            up.abort()
        ep = self.ep
        if ep is not None:
            if self.tried is None:
                self.tried = {ep}
            else:
                self.tried.add(ep)
        self._release_endpoint()

    def _retry(self) -> None:
        svc = self.service
        assert svc is not None
        self.retries += 1
        svc.stats.retries += 1
        if self.pending is None:
            self.pending = list(self.replay or ())
            self.pending_size = self.replay_size
        self.attempt()

    def _attempt_failed(self, outcome: int, why: str) -> None:
        svc, ep = self.service, self.ep
        assert svc is not None and ep is not None
        svc.record(ep, outcome)
        connect_failed = outcome == OUT_CONNECT
        if self._retry_allowed(connect_failed=connect_failed):
            self._detach_failed()
            self._retry()
            return
        self._detach_failed()
        self.local_reply(502, f"bad gateway: {svc.label} endpoint {ep.name}: {why}", close=not self.req_done)

    def on_timeout(self) -> None:
        self.deadline = 0.0
        if self.done:
            return
        svc, ep = self.service, self.ep
        assert svc is not None
        if ep is not None:
            svc.record(ep, OUT_TIMEOUT)
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None
        if self.head_sent:
            self.close_after = True
            self._detach_failed()
            self.conn.close()
            self._finish()
            return
        self._detach_failed()
        self.local_reply(
            504,
            f"gateway timeout: {svc.label} did not answer within {svc.config.timeout:g}s",
            close=not self.req_done,
        )

    def local_reply(self, status: int, message: str, *, close: bool) -> None:
        """Answer from the sidecar itself (routing errors, 502/503/504)."""
        if self.waiter is not None:
            self.waiter.cancel()
            self.waiter = None
        if self.upgrade or not self.keep_alive or self.conn.closing:
            close = True
        self.pending = None  # the rest of the request body is read and dropped
        self.conn.resume(PAUSE_BODY)
        self.status = status
        self.head_sent = True
        self.conn.out.write(error_response(status, message, close=close))
        if close:
            self.close_after = True
        self._finish()

    # --- endings ----------------------------------------------------------------------------------------
    def _release_endpoint(self) -> None:
        ep = self.ep
        if ep is not None:
            self.ep = None
            ep.service.release(ep)

    def _observe(self) -> None:
        svc = self.service
        if svc is not None:
            svc.stats.in_flight -= 1
            svc.stats.observe(self.method_idx, self.status, monotonic() - self.t0)

    def _finish(self, now: float = 0.0) -> None:
        if self.done:
            return
        self.done = True  # (the deadline is left: the ticker skips done exchanges)
        ep = self.ep
        if ep is not None:  # inlined _release_endpoint: this runs for every request
            self.ep = None
            n = ep.in_flight = ep.in_flight - 1
            if not n and ep.removed:
                ep.service.drained(ep)
        svc = self.service
        if svc is not None and not self.tunnelled:
            stats = svc.stats
            stats.in_flight -= 1
            seconds = (now or monotonic()) - self.t0  # stats.observe, inlined
            status_class = self.status // 100 - 1
            stats.requests[self.method_idx][status_class if 0 <= status_class < 5 else 4] += 1
            stats.duration_sum += seconds
            stats.buckets[bisect_left(BUCKETS, seconds)] += 1
        if not self.keep_alive:
            self.close_after = True
        conn = self.conn
        queue = conn.queue
        if queue and queue[0] is self and not conn._advancing and not conn.paused & PAUSE_PIPELINE:
            queue.popleft()  # the common case of advance(), inlined
            if self.close_after:
                conn.close()
                return
            if queue:
                conn.advance()
            elif (conn.eof or conn.closing) and not conn.closed and conn.upgrading is None:
                conn.close()
            return
        conn.advance()

    def abort(self) -> None:
        """The client went away: drop everything this exchange holds."""
        if self.done:
            if self.tunnelled and self.up is not None:
                self.up.close()
                self._release_endpoint()
            return
        self.done = True
        self.deadline = 0.0
        if self.waiter is not None:
            self.waiter.cancel()
            self.waiter = None
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None
        up = self.up
        self.up = None
        if up is not None:
            up.exchange = None
            if self.tunnelled:
                up.close()
            else:
                up.abort()
        self._release_endpoint()
        if self.started and self.service is not None and not self.tunnelled:
            self.status = self.status or 499
            self._observe()


_HOP_NAMES = rb"connection|keep-alive|proxy-connection|te|trailer|transfer-encoding|proxy-authenticate|proxy-authorization"
_HOP_LINE = re.compile(rb"^(?:" + _HOP_NAMES + rb"|upgrade)[ \t]*:[^\n]*\n", re.IGNORECASE | re.MULTILINE)
_HOP_EXCEPT_UPGRADE = re.compile(rb"^(?:" + _HOP_NAMES + rb")[ \t]*:[^\n]*\n", re.IGNORECASE | re.MULTILINE)


HEAD_CACHE_SIZE = 512  # distinct response heads kept (most differ only in Date: a few per second)
HEAD_CACHE_MAX_BYTES = 2048
_HEAD_CACHE: dict[
    bytes, tuple[bytes, bool, bool, bytes]
] = {}  # raw response head -> _scan_response_head(raw)


# raw response head (as received, up to its last header line's CRLF) -> (the head for the client with its
# final CRLF, the body's Content-Length, the status), or None: a head the general path handled as the common
# case (2xx but 204, Content-Length framing, keep-alive; see response_head) and its fast path can repeat
_FAST_RESPONSES: dict[bytes, tuple[bytes, int, int] | None] = {}


def _learn_response(raw: bytes, whole: bytes, status: int) -> None:
    """Remember `raw` for the response fast path if its Content-Length is one plain number (else None)."""
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


def _scan_response_head(raw: bytes, *, upgrade: bool) -> tuple[bytes, bool, bool, bytes]:
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


def _drop_named(head: bytes, names: set[bytes]) -> bytes:
    """Remove the header lines named in `names` (lower-case) from a raw header block."""
    pattern = rb"^(?:" + b"|".join(re.escape(n) for n in names) + rb")[ \t]*:[^\n]*\n"
    return re.sub(pattern, b"", head, flags=re.IGNORECASE | re.MULTILINE)


def _drop_headers(parts: list[bytes], start: int, names: set[bytes]) -> list[bytes]:
    """Remove (name, ': ', value, CRLF) groups whose name is in `names` from parts[start:]."""
    kept = parts[:start]
    for i in range(start, len(parts), 4):
        if parts[i].lower() not in names:
            kept += parts[i : i + 4]
    return kept


# --- upstream ---------------------------------------------------------------------------------------------
class UpstreamConnection(asyncio.Protocol):
    """A keep-alive connection to one endpoint port; carries one Exchange at a time."""

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

    def connection_made(self, transport: Any) -> None:
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

    def data_received(self, data: bytes) -> None:
        ex = self.exchange
        if self.clean and ex is not None and ex.plain:
            # The fast path: a whole response in this one read, whose head the general path has handled as the
            # common case before (_FAST_RESPONSES): the head for the client is known, the body is the rest of
            # `data` (exactly Content-Length bytes). Then what response_head, on_body, response_done and
            # _finish do for it, inlined. The parser is not fed (it stays fresh).
            i = data.find(b"\r\n\r\n")  # (-1: data[:1] is never a head learnt)
            hit = _FAST_RESPONSES.get(data[: i + 2])
            conn = ex.conn
            if hit is not None and len(data) - i - 4 == hit[1] and not conn.closing:
                # (a plain exchange is attached only once its request is all sent: req_done, service, ep)
                svc: ServiceState = ex.service  # type: ignore[assignment]
                ep: EndpointState = ex.ep  # type: ignore[assignment]
                now = monotonic()
                if svc.uses_rtt:
                    ep.observe_rtt(now - ex.t_attempt, now)
                if ep.failing:
                    svc.record(ep, OUT_SUCCESS)
                else:
                    ep.outcomes[OUT_SUCCESS] += 1
                ex.status = hit[2]
                ex.head_sent = ex.done = True
                out = conn.out
                data = hit[0] + data[i + 4 :] if hit[1] else hit[0]
                if out.buf is None and not out.closed:
                    out.transport.write(data)
                else:
                    out.write(data)
                # response_done: back to the idle pool
                self.exchange = ex.up = None
                if self.read_paused:
                    self.resume_reading()
                idle = ep.idle.get(self.port)
                if idle is not None and len(idle) < MAX_IDLE_PER_ENDPOINT and not (ep.removed or self.closed):
                    self.idle_since = now
                    idle.append(self)
                else:
                    self.release(now)
                # _finish
                ex.ep = None
                ep.in_flight -= 1
                if ep.removed and not ep.in_flight:
                    ep.service.drained(ep)
                stats = svc.stats
                stats.in_flight -= 1
                seconds = now - ex.t0
                stats.requests[ex.method_idx][1] += 1  # (2xx: the only status class learnt)
                stats.duration_sum += seconds
                if seconds <= BUCKET_1:  # bisect_left(BUCKETS, seconds), its common cases first
                    stats.buckets[0 if seconds <= BUCKET_0 else 1] += 1
                elif seconds <= BUCKET_3:
                    stats.buckets[2 if seconds <= BUCKET_2 else 3] += 1
                else:
                    stats.buckets[bisect_left(BUCKETS, seconds)] += 1
                queue = conn.queue
                if queue and queue[0] is ex and not conn._advancing and not conn.paused & PAUSE_PIPELINE:
                    queue.popleft()
                    if not ex.retries:
                        conn.spare = ex  # (nothing refers to it any more: the next fast request reuses it)
                    if queue:
                        conn.advance()
                    elif conn.eof and not conn.closed and conn.upgrading is None:
                        conn.close()
                else:
                    conn.advance()
                return
        if self.tunnel is not None:
            self.tunnel.write(data)
            return
        if ex is None:
            self.abort()  # nobody asked: an idle connection must not speak
            return
        self.clean = False
        fed_for = ex
        if self.in_head:
            self.hbuf += data
        out = ex.conn.out
        gather = out.buf is None
        if gather:
            out.buf = []  # what goes to the client from this chunk leaves in one write
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as e:
            ex = self.exchange
            if ex is not None and ex.status == 101:
                ex.upstream_upgraded(self, data[e.args[0] :])
        except HttpParserError as e:
            ex = self.exchange
            if ex is not None:
                ex.upstream_failed(self, f"invalid response: {e}")
            else:
                self.abort()
        finally:
            if self.stale_parser or (self.exchange is not fed_for and not self.closed):
                # a response ended: a fresh parser (whatever followed it in `data` was for nobody)
                self.stale_parser = False
                self.parser = HttpResponseParser(self)
                self.clean = True
            if gather:
                out.flush()

    # parser callbacks (no per-header callbacks: the raw head is forwarded, minus hop-by-hop lines)
    def on_headers_complete(self) -> None:
        if self.stale_parser:
            return
        buf = self.hbuf
        start = self.hoff
        end = buf.find(b"\r\n\r\n", start)
        end = end + 2 if end >= 0 else buf.find(b"\n\n", start) + 1
        status = self.parser.get_status_code()
        if status < 200 and status != 101:
            self.skip = True  # 1xx informational: the real response follows
            self.hoff = end + 2
            return
        raw = buf[start:end]
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

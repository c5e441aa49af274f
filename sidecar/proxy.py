"""The sidecar's HTTP listeners: a listening address, the Services reachable there, and the process-wide
ticker that enforces timeouts. The HTTP/1 codec itself (connections, requests, upstreams) is sidecar/http1/;
its names stay importable from here."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from typing import Protocol as Structural

from mypy_extensions import mypyc_attr

from .accept import Acceptor
from .http import service_hostnames, split_host
from .http1.client import (
    FAST_REQUESTS_PER_CONNECTION,
    LINGER_SECONDS,
    STATS,
    ClientConnection,
    HeadTooLarge,
    ProcessStats,
)
from .http1.exchange import Exchange
from .http1.upstream import UpstreamConnection, sweep_idle
from .http1.wire import _FAST_RESPONSES, _HEAD_CACHE, Writer
from .services import ServiceState

if TYPE_CHECKING:
    from .protocols import Protocol

__all__ = [
    "FAST_REQUESTS_PER_CONNECTION",
    "LINGER_SECONDS",
    "STATS",
    "TICKER",
    "_FAST_RESPONSES",
    "_HEAD_CACHE",
    "ClientConnection",
    "Exchange",
    "HeadTooLarge",
    "Listener",
    "ProcessStats",
    "ProxyOptions",
    "Route",
    "Ticker",
    "UpstreamConnection",
    "Writer",
    "sweep_idle",
]

log = logging.getLogger(__name__)


def bound_socket(host: str, port: int, kind: socket.SocketKind, *, reuse_port: bool = False,
                 freebind: bool = False) -> socket.socket:
    """A TCP or UDP socket bound to host:port, for a listener. `freebind`: bind even if the address is not (yet)
    on an interface (Linux IP_FREEBIND), so a Service address the agent adds a moment later needs no retry."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if freebind and family == socket.AF_INET:
            sock.setsockopt(socket.SOL_IP, getattr(socket, "IP_FREEBIND", 15), 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock
monotonic = time.monotonic


@dataclass
class ProxyOptions:
    fail_fast: float = 1.0  # seconds a request waits for a ready endpoint before a 503
    connect_timeout: float = 3.0
    idle_timeout: float = 30.0  # upstream keep-alive connections idle longer are closed
    client_idle_timeout: float = 75.0  # client keep-alive connections with nothing to do (nginx's default)
    header_timeout: float = 10.0  # a client that takes longer to send a request head gets a 408
    max_header_bytes: int = 64 * 1024  # a request head (request line and headers) larger gets a 431
    max_headers: int = 100  # a request with more header lines gets a 431
    max_connections: int = 10_000  # client connections per listener; at the cap, accepting pauses
    detect_timeout: float = 0.3  # DETECT ports: a client silent this long is opaque TCP (server speaks first)
    tcp_idle_timeout: float = 3600.0  # opaque TCP connections with no byte either way are closed
    udp_idle_timeout: float = 30.0  # UDP flows with no datagram either way are forgotten
    zone: str = "cluster.local"


# --- routing ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    service: ServiceState
    port_name: str | None  # None: the Service's first port


@mypyc_attr(allow_interpreted_subclasses=True)  # the compiled build: IngressListener is interpreted
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
        self.server: Acceptor | None = None
        self.sock: socket.socket | None = None  # the listening socket, once started
        self.routes: list[Route] = []
        self.by_host: dict[bytes, Route] = {}
        self.local_names: set[bytes] = {b"localhost", host.encode(), b"127.0.0.1", b"::1"}
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.forwarded_proto: bytes | None = None  # an edge listener (Ingress): X-Forwarded-Proto/-Host too
        self.ssl_context: Any = None  # TLS (ssl.SSLContext): the Ingress's HTTPS listener
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

    def route(self, host: bytes | None, target: bytes = b"/") -> Route | None:
        """The route of a request by its Host (`target`, the request target, matters to Ingress listeners)."""
        if len(self.routes) == 1:
            return self.routes[0]
        if host is None:
            return None
        return self.by_host.get(split_host(host))

    def no_route(self, host: bytes | None, target: bytes) -> tuple[int, str, bytes]:
        """When route() found nothing: the status, the reason and extra response headers to answer with."""
        shown = host.decode(errors="replace") if host else "(no Host header)"
        return 404, f"no Service for host {shown} on {self.host}:{self.port}", b""

    def allowed_authority(self, host: bytes) -> bool:
        """May an absolute-form request name this host? Only the Services here (and this listener)."""
        name = split_host(host)
        return name in self.by_host or name in self.local_names

    async def start(self, *, reuse_port: bool = False, freebind: bool = False,
                    sock: socket.socket | None = None) -> None:
        """Listen. `freebind`: bind even if the address is not (yet) on an interface (Linux IP_FREEBIND), so a
        Service address the agent adds a moment later needs no retry. `sock`: an inherited listening socket
        to adopt instead (the connections queued in its backlog are accepted)."""
        loop = self.loop = asyncio.get_running_loop()
        if sock is None:
            sock = bound_socket(self.host, self.port, socket.SOCK_STREAM, reuse_port=reuse_port, freebind=freebind)
        try:
            sock.listen(1024)
            sock.setblocking(False)
            self.server = Acceptor(
                sock,
                lambda: self.accept(),
                limit=self.options.max_connections,
                active=lambda: len(self.connections) + len(self.streams),
                loop=loop,
                ssl=self.ssl_context,
            )
            self.server.start()
        except BaseException:
            sock.close()
            raise
        self.sock = sock
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
                conn.idle_tick(self.options, now)
        if idle_scan:
            for stream in list(self.streams):
                stream.idle_tick(self.options)
            if self.server is not None:
                self.server.connection_closed()  # (accept again if other codecs' connections closed)

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


class Ticking(Structural):
    """What the Ticker drives: a Listener, a UdpListener (a structural type, not Listener: the compiled
    build checks the class of an argument typed Listener at run time)."""

    host: str
    port: int

    def tick(self, now: float, idle_scan: bool) -> None: ...


class Ticker:
    """One task for all the listeners of a process: timeouts checked every `interval` (cheaper than a timer
    per request, at most `interval` late), idle connections once a second."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.listeners: set[Ticking] = set()
        self.task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.now = 0.0  # monotonic() at the last tick: a clock for what needs no finer one

    def add(self, listener: Ticking, loop: asyncio.AbstractEventLoop) -> None:
        self.listeners.add(listener)
        if self.task is None or self.task.done() or self.loop is not loop:
            self.loop = loop
            self.task = loop.create_task(self._run())

    def discard(self, listener: Ticking) -> None:
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
            now = self.now = monotonic()
            for listener in list(self.listeners):
                try:
                    listener.tick(now, ticks % per_second == 0)
                except Exception:  # one bad connection must not stop every timeout
                    log.exception("timeout scan failed on %s:%d", listener.host, listener.port)


TICKER = Ticker()

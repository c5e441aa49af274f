"""The authoritative DNS server: UDP and TCP on one or more addresses, answers from the registry.

UDP (the hot path) reads a non-blocking socket from a `loop.add_reader` callback that drains up to 64 datagrams
per wake-up and answers each synchronously (a cache hit is a dict lookup and a concatenation). Measured with
bench/dns_bench.py (dnsperf, 100 names, 2 shared cores, 2026-11-24), QPS relative to dnsmasq in the same run:
this reader 0.96-1.01x on uvloop and 1.09x even on the default asyncio loop; an `asyncio.DatagramProtocol`
(`udp="protocol"`, one callback per datagram, kept for comparison) 0.87x; asyncio-dgram's `await recv()` per
packet 0.73x. The answer-time histogram samples the first datagram of each wake-up (every one when not busy).
TCP (RFC 7766): 2-byte length framing, several (pipelined) queries per connection, an idle timeout and a bound
on open connections; answers are never truncated.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Protocol

from meshd.dns.codec import DEFAULT_MAX_UDP
from meshd.dns.metrics import DnsStats
from meshd.dns.responder import Responder
from meshd.dns.upstream import Upstream
from meshd.dns.zone import DEFAULT_TTL, DEFAULT_ZONE, EndpointSource
from meshd.model.endpoints import Update

log = logging.getLogger(__name__)


class Followable(EndpointSource, Protocol):
    """What the server needs of the registry: its Services and endpoints, and a callback on every update."""

    def listen(self, listener: Callable[[Update], None]) -> Callable[[], None]: ...


DEFAULT_LISTEN = (("127.0.0.1", 8600),)
_SOCKET_BUFFER = 4 * 1024 * 1024


class DnsServer:
    """Serves `zone` from `registry` on every (host, port) of `listen`; port 0 picks one (same for UDP and TCP)."""

    def __init__(
        self,
        registry: Followable,
        *,
        zone: str = DEFAULT_ZONE,
        ttl: int = DEFAULT_TTL,
        listen: Sequence[tuple[str, int]] = DEFAULT_LISTEN,
        max_udp: int = DEFAULT_MAX_UDP,
        tcp_idle_timeout: float = 10.0,
        max_tcp_connections: int = 128,
        cache_size: int = 10_000,
        udp: str = "reader",
        clock: Callable[[], int] = time.perf_counter_ns,
        upstream: Upstream | None = None,
    ) -> None:
        if udp not in ("reader", "protocol"):
            raise ValueError(f"udp must be 'reader' or 'protocol', not {udp!r}")
        ns_address = next((host for host, _ in listen if _is_specific_ipv4(host)), None)
        self.registry = registry
        self.responder = Responder(
            registry,
            zone=zone,
            ttl=ttl,
            ns_address=ns_address,
            max_udp=max_udp,
            cache_size=cache_size,
            upstream=upstream,
        )
        self.listen = list(listen)
        self.tcp_idle_timeout = tcp_idle_timeout
        self.max_tcp_connections = max_tcp_connections
        self.udp = udp
        self.clock = clock
        self.addresses: list[tuple[str, int]] = []
        self._transports: list[asyncio.BaseTransport | _UdpReader] = []
        self._servers: list[asyncio.Server] = []
        self._connections: set[_TcpProtocol] = set()
        self._unlisten: Callable[[], None] | None = None

    @property
    def stats(self) -> DnsStats:
        return self.responder.stats

    async def start(self) -> None:
        """Binds every listen address (raises OSError if one cannot be bound) and follows the registry."""
        if self._unlisten is None:
            unlisten = self.registry.listen(self.responder.invalidate)
            listen_pods = getattr(self.registry, "listen_pods", None)  # the agent's pods' A and PTR records
            unlisten_pods = listen_pods(self.responder.invalidate_pods) if listen_pods else (lambda: None)

            def stop() -> None:
                unlisten()
                unlisten_pods()

            self._unlisten = stop
            self.responder.invalidate()
        try:
            for host, port in self.listen:
                await self.listen_on(host, port)
        except BaseException:
            await self.close()
            raise

    async def listen_on(self, host: str, port: int) -> tuple[str, int]:
        """Adds one address (e.g. the bridge gateway once it exists); returns the (host, port) bound."""
        loop = asyncio.get_running_loop()
        for _attempt in range(20 if port == 0 else 1):
            sock = _udp_socket(host, port)
            transport: asyncio.BaseTransport | _UdpReader
            if self.udp == "reader":
                transport = _UdpReader(sock, self.responder, self.clock)
                transport.attach(loop)
            else:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _UdpProtocol(self.responder, self.clock), sock=sock
                )
            bound = sock.getsockname()[1]
            try:
                server = await loop.create_server(
                    lambda: _TcpProtocol(self), host, bound, reuse_address=True, backlog=256
                )
            except OSError:
                transport.close()
                if port != 0:
                    raise
                continue
            self._transports.append(transport)
            self._servers.append(server)
            self.addresses.append((host, bound))
            log.info("DNS: serving %s on %s port %d (UDP and TCP)", self.responder.zone_name, host, bound)
            return host, bound
        raise OSError(f"no port free for UDP and TCP together on {host}")

    async def close(self) -> None:
        self.responder.close()
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        for transport in self._transports:
            transport.close()
        for server in self._servers:
            server.close()
        for connection in list(self._connections):
            connection.close()
        for server in self._servers:
            await server.wait_closed()
        self._transports.clear()
        self._servers.clear()
        self.addresses.clear()


class _UdpReader:
    """Answers the datagrams of one socket from the loop's reader callback, many per wake-up."""

    BATCH = 64

    def __init__(self, sock: socket.socket, responder: Responder, clock: Callable[[], int]) -> None:
        self.sock = sock
        self.responder = responder
        self.clock = clock
        self.loop: asyncio.AbstractEventLoop | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        loop.add_reader(self.sock.fileno(), self.readable)

    def readable(self) -> None:
        recvfrom, sendto, answer = self.sock.recvfrom, self.sock.sendto, self.responder.answer_udp
        exact, queries = self.responder.exact, self.responder.stats.queries  # the same objects for life
        start = self.clock()
        for i in range(self.BATCH):
            try:
                data, addr = recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. a queued ICMP error; the next wake-up reads on
            hit = exact.get(data[2:])  # answer_udp's first step, inlined: this loop is the hot path
            if hit is not None:
                queries[hit[1]] += 1
                reply: bytes | None = data[:2] + hit[0]
            else:
                reply = answer(data, partial(self.send, addr=addr))
            if reply is not None:
                try:
                    sendto(reply, addr)
                except OSError:  # send buffer full: the client will retry, as with any lost datagram
                    self.responder.stats.dropped[0] += 1
            if i == 0:
                self.responder.stats.observe(self.clock() - start)

    def send(self, reply: bytes, addr: tuple[str, int]) -> None:
        """A reply sent after its query's wake-up (an ExternalName target looked up first)."""
        if self.sock.fileno() >= 0:
            try:
                self.sock.sendto(reply, addr)
            except OSError:
                self.responder.stats.dropped[0] += 1

    def close(self) -> None:
        if self.loop is not None and self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, responder: Responder, clock: Callable[[], int]) -> None:
        self.responder = responder
        self.clock = clock
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        start = self.clock()
        reply = self.responder.answer_udp(data, partial(self.send, addr=addr))
        if reply is not None:
            self.send(reply, addr)
        self.responder.stats.observe(self.clock() - start)

    def send(self, reply: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            try:
                self.transport.sendto(reply, addr)
            except OSError:
                pass

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors from clients that went away: nothing to do


class _TcpProtocol(asyncio.Protocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.responder = server.responder
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if len(self.server._connections) >= self.server.max_tcp_connections:
            transport.close()
            return
        self.server._connections.add(self)
        self._arm()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._arm()
        while len(self.buffer) >= 2 and self.transport is not None:
            length = (self.buffer[0] << 8) | self.buffer[1]
            if len(self.buffer) < 2 + length:
                break
            message = bytes(self.buffer[2 : 2 + length])
            del self.buffer[: 2 + length]
            start = self.server.clock()
            reply = self.responder.answer_tcp(message, self.send)
            if reply is not None:
                self.send(reply)
            self.responder.stats.observe(self.server.clock() - start)

    def send(self, reply: bytes) -> None:
        if self.transport is not None:
            self.transport.write(len(reply).to_bytes(2, "big") + reply)

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()  # a client that does not read its answers gets no more parsed

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._connections.discard(self)
        if self.idle is not None:
            self.idle.cancel()
        self.transport = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _arm(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        loop = asyncio.get_running_loop()
        self.idle = loop.call_later(self.server.tcp_idle_timeout, self.close)


def _udp_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)
            except OSError:
                pass
        sock.setblocking(False)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _is_specific_ipv4(host: str) -> bool:
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() for p in parts) and host != "0.0.0.0"

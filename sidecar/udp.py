"""The UDP codec: a datagram listener on a Service address:port, balanced per client flow.

A flow is one client address:port. Its first datagram picks an endpoint (least flows by power of two choices,
`ServiceState.conn_balancer`, over the same endpoints as TCP: every node's, or this node's first for a
`trafficDistribution: PreferClose` Service, sidecar/topology.py) and opens one upstream socket connected to it,
or, for another node's endpoint, a flow on the mutual-TLS stream to that node's mesh gateway
(sidecar/mesh/udptunnel.py); the flow's later datagrams take the same way, and replies go back to the client
from the listener's socket, so from the Service address. A flow forgets its endpoint after `ProxyOptions.udp_idle_timeout` without a datagram either way,
when the endpoint refuses (ICMP port unreachable: what was not answered is sent again to another one), or
once its endpoint has left the registry and the flow is quiet for a second; its next datagram picks anew.
A listener keeps at most FLOW_LIMIT flows (a socket each): past it, the oldest ends.
A flow counts in its endpoint's in-flight count, so the drain ack waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from .mesh.udptunnel import open_tunnel
from .proxy import TICKER, ProxyOptions, Route, bound_socket
from .services import OUT_CONNECT, EndpointState

log = logging.getLogger(__name__)
FLOW_LIMIT = 4096  # flows (one socket each) per listener; a new one past it ends the oldest
UNANSWERED_LIMIT = 16  # datagrams kept per flow to send again after a refusal (and before the socket is up)


class UdpListener(asyncio.DatagramProtocol):
    """One UDP Service port; its flows."""

    def __init__(
        self, host: str, port: int, *, routes: list[Route], options: ProxyOptions | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.options = options or ProxyOptions()
        self.routes = list(routes)
        self.flows: dict[Any, Flow] = {}
        self.transport: Any = None
        self.sock: socket.socket | None = None  # the bound socket, once started

    def set_routes(self, routes: list[Route]) -> None:
        self.routes = list(routes)  # one Service per UDP port: no Host to route by, the first one serves

    async def start(self, *, reuse_port: bool = False, freebind: bool = False,
                    sock: socket.socket | None = None) -> None:
        """Bind (or adopt `sock`, an inherited bound socket)."""
        loop = asyncio.get_running_loop()
        if sock is None:
            sock = bound_socket(self.host, self.port, socket.SOCK_DGRAM, reuse_port=reuse_port, freebind=freebind)
        try:
            sock.setblocking(False)
            await loop.create_datagram_endpoint(lambda: self, sock=sock)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        TICKER.add(self, loop)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        flow = self.flows.get(addr)
        if flow is None or flow.ep.removed:
            if flow is not None:
                flow.close()
            flow = self.open(addr, exclude=None)
            if flow is None:
                return  # no ready endpoint: dropped, as a network would (the client retries)
        flow.send(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp %s:%d: %s", self.host, self.port, exc)

    def open(self, client: Any, *, exclude: set[EndpointState] | None) -> Flow | None:
        """A new flow for `client` to an endpoint not in `exclude` (None when none is left)."""
        if not self.routes:
            return None
        route = self.routes[0]
        svc = route.service
        ep = svc.pick(exclude, svc.conn_balancer)
        if ep is None or (exclude and ep in exclude):
            return None
        port = svc.target_port(ep, route.port_name)
        if port is None:
            return None
        if len(self.flows) >= FLOW_LIMIT:
            self.flows[next(iter(self.flows))].close()  # the oldest (dicts keep insertion order)
        flow = self.flows[client] = Flow(self, client, route, ep, exclude or set())
        flow.task = asyncio.get_running_loop().create_task(flow.connect(ep.address, port))
        return flow

    def reply(self, data: bytes, client: Any) -> None:
        if self.transport is not None:
            self.transport.sendto(data, client)

    def tick(self, now: float, idle_scan: bool) -> None:
        if idle_scan:
            for flow in list(self.flows.values()):
                flow.idle_tick(self.options)

    async def stop(self, grace: float = 0.0) -> None:
        """Stop at once: a datagram has no in-flight request to finish."""
        if self.transport is not None:
            self.transport.close()
        for flow in list(self.flows.values()):
            flow.close()
        TICKER.discard(self)


class Flow(asyncio.DatagramProtocol):
    """One client address:port and its upstream socket, connected to one endpoint."""

    def __init__(
        self, listener: UdpListener, client: Any, route: Route, ep: EndpointState, tried: set[EndpointState]
    ) -> None:
        self.listener = listener
        self.client = client
        self.service = route.service
        self.stats = route.service.l4
        self.ep = ep
        self.tried = tried | {ep}
        self.transport: Any = None
        self.task: asyncio.Task[None] | None = None  # opening the socket (a reference keeps it alive)
        self.unanswered: list[bytes] = []  # sent (or waiting for the socket) since the last reply
        self.closed = False
        self.active = True
        self.quiet = 0
        ep.in_flight += 1
        self.stats.udp_opened += 1
        self.stats.udp_flows += 1

    async def connect(self, address: str, port: int) -> None:
        ep = self.ep
        if ep.gateway:  # another node's pod: through its gateway, over mutual TLS
            try:
                async with asyncio.timeout(self.listener.options.connect_timeout):
                    end = await open_tunnel(self, address, port, gateway=ep.gateway, node=ep.node)
            except (OSError, TimeoutError) as e:
                log.info("%s: cannot open a UDP flow to %s on node %s: %s", self.service.label, ep.name, ep.node, e)
                self.refused()
                return
            self.connection_made(end)
            return
        try:
            await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: self, remote_addr=(address, port)
            )
        except OSError as e:
            log.info("%s: cannot open a UDP flow to %s: %s", self.service.label, self.ep.name, e)
            self.refused()

    def connection_made(self, transport: Any) -> None:
        if self.closed:
            transport.close()
            return
        self.transport = transport
        for data in self.unanswered:
            transport.sendto(data)

    def send(self, data: bytes) -> None:
        stats = self.stats
        stats.udp_datagrams_in += 1
        stats.udp_bytes_in += len(data)
        self.active = True
        if len(self.unanswered) < UNANSWERED_LIMIT:
            self.unanswered.append(data)
        if self.transport is not None:
            self.transport.sendto(data)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        stats = self.stats
        stats.udp_datagrams_out += 1
        stats.udp_bytes_out += len(data)
        self.active = True
        self.unanswered.clear()
        self.listener.reply(data, self.client)

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, ConnectionRefusedError):
            self.refused()

    def refused(self, *, record: bool = True) -> None:
        """The endpoint refused (nothing listens): move the flow, with what it did not answer, elsewhere."""
        if self.closed:
            return
        if record:
            self.service.record(self.ep, OUT_CONNECT)
        unanswered = self.unanswered
        self.close()
        flow = self.listener.open(self.client, exclude=self.tried)
        if flow is not None:
            flow.unanswered.extend(unanswered)  # sent once its socket is up

    def idle_tick(self, options: ProxyOptions) -> None:
        if self.active:
            self.active = False
            self.quiet = 0
            return
        self.quiet += 1
        if self.quiet >= options.udp_idle_timeout or self.ep.removed:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.listener.flows.get(self.client) is self:
            del self.listener.flows[self.client]
        self.stats.udp_flows -= 1
        self.service.release(self.ep)
        if self.transport is not None:
            self.transport.close()

"""The mesh gateway: this node's inbound door for other nodes' sidecars (`--mesh-listen`, default port 4143 as
Linkerd's inbound). TLS 1.3 with a client certificate from the cluster CA, then the peer checked (revoked serial,
deleted node: refused); the client names one pod endpoint (`CONNECT ip:port`), which must be one of THIS node's
endpoints (never an arbitrary address: no open relay), and bytes pass both ways with back-pressure and
half-close (meshd/1 frames on the TLS side, plain TCP on the pod's); or it asks for `DATAGRAMS`, a stream of UDP
flows, each opened to one of this node's pods' UDP ports (sidecar/mesh/udptunnel.py: a UDP socket per flow on
the pod's side)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

from ..accept import Acceptor
from .identity import Contexts, MeshIdentity
from .stats import MESH_STATS
from .udptunnel import PodFlows
from .wire import ALPN_REUSE, END, FIN, MAX_LINE, OK, Deframer, frame, parse_request

log = logging.getLogger(__name__)

WRITE_HIGH = 256 * 1024
PREAMBLE_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0

Allowed = Callable[[str, int, str], bool]  # is (address, port, "tcp" or "udp") one of this node's pod endpoints?


class MeshGateway:
    def __init__(self, host: str, port: int, *, identity: MeshIdentity, allowed: Allowed,
                 max_connections: int = 10000) -> None:
        self.host, self.port = host, port
        self.identity = identity
        self.allowed = allowed
        self.max_connections = max_connections
        self.connections: set[GatewayConnection] = set()
        self.acceptor: Acceptor | None = None

    async def start(self, *, reuse_port: bool = False) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.host, self.port))
            sock.listen(1024)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        contexts = self.identity.current
        self.acceptor = Acceptor(sock, lambda: GatewayConnection(self), limit=self.max_connections,
                                 active=lambda: len(self.connections), loop=loop,
                                 ssl=contexts.server if contexts is not None else None)
        self.identity.on_change.append(self._swap)
        self.acceptor.start()
        log.info("mesh gateway on %s:%d (%s)", self.host, self.port,
                 "plaintext, for the benchmark only" if self.identity.plaintext else "mutual TLS 1.3")

    def _swap(self, contexts: Contexts) -> None:
        if self.acceptor is not None:
            self.acceptor.ssl = contexts.server  # new handshakes use the new certificate; open ones keep theirs
        for conn in list(self.connections):  # but a peer revoked (or its node deleted) meanwhile is cut off
            refusal = self.identity.refusal(conn.der) if conn.der is not None else None
            if refusal is not None:
                MESH_STATS.refused["peer"] += 1
                log.warning("mesh gateway: closing %s: %s", conn.peer, refusal)
                conn.transport.abort()

    def closed(self, conn: GatewayConnection) -> None:
        if conn in self.connections:
            MESH_STATS.active -= 1
        self.connections.discard(conn)
        if self.acceptor is not None:
            self.acceptor.connection_closed()

    async def stop(self) -> None:
        if self.acceptor is not None:
            self.acceptor.close()
        for conn in list(self.connections):
            conn.close()


class GatewayConnection(asyncio.Protocol):
    """One peer connection: the checks, the CONNECT line, then frames to and from one pod connection."""

    def __init__(self, gateway: MeshGateway) -> None:
        self.gateway = gateway
        self.transport: Any = None
        self.buf = b""
        self.pod: PodSide | PodFlows | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.deframer = Deframer()
        self.timer: asyncio.TimerHandle | None = None
        self.peer = "?"
        self.der: bytes | None = None  # the peer's certificate (checked again when the trust file changes)
        self.done = False
        self.reusable = False  # meshd/2: a stream's clean end frees the connection for the next CONNECT
        self.client_fin = self.pod_fin = False  # the current stream's ends, each way

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.gateway.connections.add(self)
        MESH_STATS.active += 1
        transport.set_write_buffer_limits(high=WRITE_HIGH)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None or not self.gateway.identity.plaintext:
            self.der = der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            refusal = self.gateway.identity.refusal(der)
            if refusal is not None:
                MESH_STATS.refused["peer"] += 1
                log.warning("mesh gateway: refused %s: %s", self.peer, refusal)
                transport.abort()
                return
            self.reusable = ssl_object is not None and ssl_object.selected_alpn_protocol() == ALPN_REUSE
        self.timer = asyncio.get_running_loop().call_later(PREAMBLE_TIMEOUT, self._too_slow)

    def _too_slow(self) -> None:
        log.info("mesh gateway: %s sent no CONNECT within %.0fs", self.peer, PREAMBLE_TIMEOUT)
        self.transport.abort()

    def _refuse(self, reason: str, why: str = "target") -> None:
        self.done = True
        MESH_STATS.refused[why] += 1
        log.warning("mesh gateway: %s: %s", self.peer, reason)
        self.transport.write(f"ERR {reason}\n".encode())
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        pod = self.pod
        if self.done:
            return  # refused: the connection is closing
        if pod is not None and pod.transport is not None:
            for chunk in self.deframer.feed(data):
                if chunk is None:
                    self.client_fin = True
                    if self.pod_fin and isinstance(pod, PodSide):  # both ways ended: the pod's connection goes
                        pod.transport.close()
                    elif pod.transport.can_write_eof():
                        pod.transport.write_eof()
                elif chunk and not self.client_fin:
                    pod.transport.write(chunk)
            return
        if self.connecting is not None:
            self.buf += data  # frames sent before OK: passed on once the pod answers
            return
        self.buf += data
        line, newline, rest = self.buf.partition(b"\n")
        if not newline:
            if len(self.buf) > MAX_LINE:
                self._refuse("expected one CONNECT line")
            return
        if self.timer is not None:
            self.timer.cancel()
        try:
            protocol, address, port = parse_request(line)
        except ValueError as error:
            self._refuse(f"bad CONNECT: {error}")
            return
        if protocol == "udp":  # UDP flows: each OPEN is checked (udptunnel.PodFlows)
            allowed = self.gateway.allowed
            self.buf = rest
            self.pod_connected(PodFlows(self, lambda address, port: allowed(address, port, "udp")))
            return
        if not self.gateway.allowed(address, port, protocol):
            self._refuse(f"{address}:{port} is not a pod endpoint of this node")
            return
        self.buf = rest
        self.transport.pause_reading()
        self.connecting = asyncio.get_running_loop().create_task(self._connect(address, port))

    async def _connect(self, address: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        pod = PodSide(self)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await loop.create_connection(lambda: pod, address, port)
        except (OSError, TimeoutError) as error:
            if not self.done:
                self._refuse(f"cannot connect to {address}:{port}: {error or 'timeout'}", "connect")
            return

    def pod_ended(self) -> None:
        """The pod's side of the stream ended (its EOF, sent on as FIN): with the client's FIN too, its
        connection is closed (then `pod_lost`)."""
        self.pod_fin = True
        self.transport.write(FIN)
        if self.client_fin and self.pod is not None and self.pod.transport is not None:
            self.pod.transport.close()

    def pod_lost(self, exc: Exception | None) -> None:
        """The pod's connection is closed: on meshd/2, after a clean end both ways, the stream ends with END and
        the connection waits for the next CONNECT; otherwise the connection ends."""
        if self.done:
            return
        if not (self.reusable and exc is None and self.client_fin and self.pod_fin):
            self.transport.close()
            return
        self.transport.write(END)
        self.pod, self.connecting, self.buf = None, None, b""
        self.client_fin = self.pod_fin = False
        self.deframer = Deframer()
        self.timer = asyncio.get_running_loop().call_later(PREAMBLE_TIMEOUT, self._too_slow)

    def pod_connected(self, pod: PodSide | PodFlows) -> None:
        """OK goes out before anything the pod sends (a server that speaks first, as h2's SETTINGS)."""
        if self.done:
            pod.transport.close()
            return
        self.pod = pod
        MESH_STATS.accepted += 1
        self.transport.write(OK)
        pending, self.buf = self.buf, b""
        if pending:
            self.data_received(pending)
        self.transport.resume_reading()

    def eof_received(self) -> bool:
        return False  # TLS closed: the end

    def pause_writing(self) -> None:
        if self.pod is not None and self.pod.transport is not None:
            self.pod.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.pod is not None and self.pod.transport is not None:
            self.pod.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
        self.gateway.closed(self)
        if self.pod is not None and self.pod.transport is not None:
            self.pod.transport.close()
        elif self.connecting is not None:
            self.connecting.cancel()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class PodSide(asyncio.Protocol):
    """The gateway's plain TCP connection to the pod."""

    def __init__(self, conn: GatewayConnection) -> None:
        self.conn = conn
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH)
        try:
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        self.conn.pod_connected(self)

    def data_received(self, data: bytes) -> None:
        self.conn.transport.write(frame(data))

    def eof_received(self) -> bool:
        self.conn.pod_ended()
        return True  # the other direction may go on

    def pause_writing(self) -> None:
        self.conn.transport.pause_reading()

    def resume_writing(self) -> None:
        self.conn.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.pod_lost(exc)


def local_endpoints(table: Any) -> Allowed:
    """The gateway's rule from the sidecar's table: (address, port) of an endpoint of this node (one without a
    gateway of its own) on one of its Service ports; for a UDP flow, on one of its `protocol: UDP` ports."""

    def allowed(address: str, port: int, protocol: str = "tcp") -> bool:
        for svc in table.services.values():
            for ep in (*svc.endpoints.values(), *svc.draining.values()):
                if ep.gateway or ep.address != address:
                    continue
                if protocol != "udp":
                    if port in ep.ports.values():
                        return True
                elif svc.info is not None and any(p.protocol.upper() == "UDP" and svc.target_port(ep, p.name) == port
                                                  for p in svc.info.ports):
                    return True
        return False

    return allowed

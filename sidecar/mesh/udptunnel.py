"""UDP flows to other nodes' pods, through their mesh gateways: every flow of this sidecar to one node shares one
meshd/1 stream (opened with `DATAGRAMS`, mutual TLS as every stream between nodes), as OPEN, DATA and CLOSE
messages with the flow's id (sidecar/mesh/datagrams.py). A new flow costs one message, not a TLS handshake.

Sidecar side: `open_tunnel` gives a flow (sidecar/udp.py's Flow) a `TunnelEnd` to send through (`sendto`,
`close`) on its node's `Link`, made at the first flow and closed LINK_IDLE seconds after its last; the flow
hears `datagram_received`, `refused()` when the gateway closes the flow (its pod refused, or the OPEN was), and
`refused(record=False)` when the link broke. Gateway side: `PodFlows`, one UDP socket connected to the pod per
flow, each OPEN checked against the gateway's rule (its own pods' UDP ports). A datagram that finds the TLS
write buffer full is dropped, as a congested network drops one (UDP has no back-pressure to pass on). Each side
gathers the messages of one pass of the event loop into one write (one TLS record, one frame, for a burst)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from .connect import connect_endpoint
from .datagrams import CLOSE, DATA, MAX_DATAGRAM, OPEN, MessageDeframer, message
from .stats import MESH_STATS
from .wire import frame, host_port, parse_target

log = logging.getLogger(__name__)

WRITE_HIGH = 256 * 1024  # bytes waiting in a TLS write buffer above which datagrams are dropped
LINK_IDLE = 10.0  # seconds a link without flows stays open for the next one
FLOWS_PER_LINK = 4096  # the gateway's bound on one link's flows (a UDP socket each)
PENDING_PER_FLOW = 16  # datagrams the gateway keeps for a flow whose socket is being opened


class Batch:
    """Messages gathered until the end of the event loop's pass, then written at once with `write`."""

    __slots__ = ("parts", "write")

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self.write = write
        self.parts: list[bytes] = []

    def add(self, data: bytes) -> None:
        if not self.parts:
            asyncio.get_running_loop().call_soon(self.flush)
        self.parts.append(data)

    def flush(self) -> None:
        parts, self.parts = self.parts, []
        if parts:
            self.write(parts[0] if len(parts) == 1 else b"".join(parts))


class FlowSide(Protocol):
    """What a tunnel tells its flow (sidecar/udp.py's Flow)."""

    def datagram_received(self, data: bytes, addr: Any) -> None: ...

    def refused(self, *, record: bool = True) -> None: ...


LINKS: dict[tuple[str, str], asyncio.Task[Link]] = {}  # (gateway, node) -> its link, made or being made


async def open_tunnel(flow: FlowSide, address: str, port: int, *, gateway: str, node: str) -> TunnelEnd:
    """A flow to address:port on `node` through its `gateway`, on the link to that node (made if none is open);
    OSError (or TimeoutError) when the link cannot be made."""
    key = (gateway, node)
    task = LINKS.get(key)
    if task is None or (task.done() and (task.cancelled() or task.exception() is not None or task.result().closed)):
        task = LINKS[key] = asyncio.get_running_loop().create_task(_make_link(key), name=f"mesh link {gateway}")
    link = await asyncio.shield(task)
    if link.closed:
        raise ConnectionResetError(f"the link to node {node or gateway} closed")
    return link.open(flow, address, port)


async def _make_link(key: tuple[str, str]) -> Link:
    try:
        _, link = await connect_endpoint(lambda: Link(key), "", 0, gateway=key[0], node=key[1], protocol="udp")
    except BaseException:
        if LINKS.get(key) is asyncio.current_task():
            del LINKS[key]
        raise
    return link  # type: ignore[no-any-return]


class Link(asyncio.Protocol):
    """This sidecar's stream of UDP flows to one node: the codec protocol on a MeshTransport (connect.py)."""

    def __init__(self, key: tuple[str, str]) -> None:
        self.key = key
        self.transport: Any = None
        self.batch: Batch = Batch(lambda data: None)  # (until connected)
        self.flows: dict[int, FlowSide] = {}
        self.next_id = 0
        self.deframer = MessageDeframer()
        self.closed = False
        self.dropped = 0
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.batch = Batch(self._write)

    def _write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    def open(self, flow: FlowSide, address: str, port: int) -> TunnelEnd:
        self.next_id = (self.next_id + 1) & 0xFFFFFFFF
        while self.next_id in self.flows or not self.next_id:
            self.next_id = (self.next_id + 1) & 0xFFFFFFFF
        self.flows[self.next_id] = flow
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None
        self.batch.add(message(OPEN, self.next_id, host_port(address, port).encode()))
        return TunnelEnd(self, self.next_id)

    def send(self, flow: int, data: bytes) -> None:
        if self.closed or len(data) > MAX_DATAGRAM:
            return
        if self.transport.get_write_buffer_size() > WRITE_HIGH:
            self.dropped += 1
            return
        self.batch.add(message(DATA, flow, data))

    def end(self, flow: int) -> None:
        """The flow ended on this side: the gateway closes its socket."""
        if self.flows.pop(flow, None) is None or self.closed:
            return
        self.batch.add(message(CLOSE, flow))
        if not self.flows:
            self.idle = asyncio.get_running_loop().call_later(LINK_IDLE, self._close_if_idle)

    def _close_if_idle(self) -> None:
        if not self.flows and not self.closed:
            self.closed = True  # a flow opened from now on makes a new link
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.deframer.messages(data)
        except ValueError as error:
            log.warning("mesh: a broken message from the gateway %s: %s", self.key[0], error)
            self.transport.abort()
            return
        flows = self.flows
        for kind, flow_id, body in messages:
            flow = flows.get(flow_id)
            if flow is None:
                continue  # a flow this side closed meanwhile
            if kind == DATA:
                flow.datagram_received(body, None)
            elif kind == CLOSE:
                del flows[flow_id]
                if body:
                    log.info("mesh: the gateway %s closed a UDP flow: %s", self.key[0], body.decode(errors="replace"))
                flow.refused()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.idle is not None:
            self.idle.cancel()
        task = LINKS.get(self.key)
        if task is not None and task.done() and not task.cancelled() and task.exception() is None \
                and task.result() is self:
            del LINKS[self.key]
        flows, self.flows = self.flows, {}
        for flow in flows.values():  # the link broke (the gateway or its node went): they move, unrecorded
            flow.refused(record=False)


class TunnelEnd:
    """One flow on a link: what sidecar/udp.py's Flow sends through."""

    __slots__ = ("id", "link")

    def __init__(self, link: Link, flow_id: int) -> None:
        self.link = link
        self.id = flow_id

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self.link.send(self.id, data)

    def close(self) -> None:
        self.link.end(self.id)


class PodFlows:
    """The gateway's side of one link: a UDP socket connected to a pod per flow. `transport` is the stream face
    the gateway connection writes to (write, write_eof, close): messages in, datagrams out."""

    def __init__(self, conn: Any, allowed: Callable[[str, int], bool]) -> None:  # a GatewayConnection
        self.conn = conn
        self.allowed = allowed
        self.transport: Any = self
        self.deframer = MessageDeframer()
        self.sockets: dict[int, PodFlow] = {}
        self.closed = False
        self.batch = Batch(self._write)

    def _write(self, data: bytes) -> None:
        tls = self.conn.transport
        if tls is not None and not tls.is_closing():
            tls.write(frame(data))

    def reply(self, kind: int, flow: int, body: bytes = b"") -> None:
        tls = self.conn.transport
        if tls is None or tls.is_closing():
            return
        if kind == DATA and tls.get_write_buffer_size() > WRITE_HIGH:
            return  # dropped, as a congested network would
        self.batch.add(message(kind, flow, body))

    # --- the stream face (what the gateway connection calls) ---------------------------------------------
    def write(self, data: bytes) -> None:
        try:
            messages = self.deframer.messages(data)
        except ValueError as error:
            log.warning("mesh gateway: %s: a broken message: %s", self.conn.peer, error)
            self.conn.transport.abort()
            return
        for kind, flow_id, body in messages:
            if kind == DATA:
                pod = self.sockets.get(flow_id)
                if pod is not None:
                    pod.send(body)
            elif kind == OPEN:
                self._open(flow_id, body)
            else:
                pod = self.sockets.pop(flow_id, None)
                if pod is not None:
                    pod.close()

    def _open(self, flow_id: int, body: bytes) -> None:
        try:
            address, port = parse_target(body.decode("ascii"))
        except (UnicodeDecodeError, ValueError) as error:
            self.reply(CLOSE, flow_id, f"bad OPEN: {error}".encode())
            return
        if not self.allowed(address, port):
            MESH_STATS.refused["target"] += 1
            log.warning("mesh gateway: %s: %s:%d/udp is not a pod endpoint of this node", self.conn.peer, address, port)
            self.reply(CLOSE, flow_id, f"{address}:{port}/udp is not a pod endpoint of this node".encode())
            return
        if flow_id in self.sockets or len(self.sockets) >= FLOWS_PER_LINK:
            self.reply(CLOSE, flow_id, b"flow id in use, or too many flows on one link")
            return
        pod = self.sockets[flow_id] = PodFlow(self, flow_id)
        pod.task = asyncio.get_running_loop().create_task(pod.connect(address, port))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.close()

    def pause_reading(self) -> None:
        pass  # replies past a full TLS buffer are dropped instead

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True
        sockets, self.sockets = self.sockets, {}
        for pod in sockets.values():
            pod.close()


class PodFlow(asyncio.DatagramProtocol):
    """One flow's UDP socket, connected to the pod."""

    def __init__(self, flows: PodFlows, flow_id: int) -> None:
        self.flows = flows
        self.id = flow_id
        self.socket: Any = None
        self.pending: list[bytes] = []
        self.task: asyncio.Task[None] | None = None
        self.closed = False

    async def connect(self, address: str, port: int) -> None:
        try:
            await asyncio.get_running_loop().create_datagram_endpoint(lambda: self, remote_addr=(address, port))
        except OSError as error:
            self._end(f"cannot open a UDP socket to {address}:{port}: {error}")

    def connection_made(self, transport: Any) -> None:
        if self.closed:
            transport.close()
            return
        self.socket = transport
        for data in self.pending:
            transport.sendto(data)
        self.pending = []

    def send(self, data: bytes) -> None:
        if self.socket is not None:
            self.socket.sendto(data)
        elif len(self.pending) < PENDING_PER_FLOW:
            self.pending.append(data)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) <= MAX_DATAGRAM:
            self.flows.reply(DATA, self.id, data)

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, ConnectionRefusedError):  # ICMP port unreachable: the sidecar moves the flow
            self._end("")

    def _end(self, reason: str) -> None:
        if self.flows.sockets.get(self.id) is self:
            del self.flows.sockets[self.id]
            self.flows.reply(CLOSE, self.id, reason.encode())
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.socket is not None:
            self.socket.close()


__all__ = ["LINKS", "Link", "PodFlows", "TunnelEnd", "open_tunnel"]

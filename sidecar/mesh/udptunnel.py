"""A UDP flow to another node's pod, through that node's mesh gateway: one meshd/1 stream per client flow (opened
with `UDP <podIP>:<port>`, mutual TLS as every stream between nodes), carrying the flow's datagrams both ways as
2-byte length frames (sidecar/mesh/datagrams.py).

Sidecar side, `TunnelEnd`: what sidecar/udp.py's Flow sends through (`sendto`, `close`) and hears from
(`datagram_received`, `refused` when the gateway ends the stream with a FIN: the pod refused, ICMP port
unreachable; `tunnel_lost` when the stream broke). Gateway side, `PodDatagrams`: one UDP socket connected to the
pod, written from the stream and framed back into it. A datagram that finds the other side's write buffer full is
dropped, as a congested network drops one (UDP has no back-pressure to pass on)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from .datagrams import MAX_DATAGRAM, DatagramDeframer, frame_datagram
from .wire import FIN, frame

log = logging.getLogger(__name__)

WRITE_HIGH = 256 * 1024  # bytes waiting in a TLS write buffer above which datagrams are dropped


class FlowSide(Protocol):
    """What a TunnelEnd tells its flow (sidecar/udp.py's Flow)."""

    def datagram_received(self, data: bytes, addr: Any) -> None: ...

    def refused(self, *, record: bool = True) -> None: ...


class TunnelEnd(asyncio.Protocol):
    """The sidecar's end of one tunnelled flow: the codec protocol on a MeshTransport (sidecar/mesh/connect.py)."""

    def __init__(self, flow: FlowSide) -> None:
        self.flow = flow
        self.transport: Any = None
        self.deframer = DatagramDeframer()
        self.dropped = 0
        self.closed = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def sendto(self, data: bytes, addr: Any = None) -> None:
        transport = self.transport
        if self.closed or transport is None or len(data) > MAX_DATAGRAM:
            return
        if transport.get_write_buffer_size() > WRITE_HIGH:
            self.dropped += 1
            return
        transport.write(frame_datagram(data))

    def data_received(self, data: bytes) -> None:
        for datagram in self.deframer.feed(data):
            if self.closed:
                return
            self.flow.datagram_received(datagram, None)

    def eof_received(self) -> bool:
        """The gateway's FIN: the pod refused a datagram (nothing listens there); the flow moves elsewhere."""
        if not self.closed:
            self.closed = True
            self.flow.refused()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:  # the stream broke (the gateway or its node went): the flow moves, unrecorded
            self.closed = True
            self.flow.refused(record=False)

    def close(self) -> None:
        """The flow ended (idle, or moved): the gateway closes its socket to the pod when the stream ends."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class PodDatagrams(asyncio.DatagramProtocol):
    """The gateway's UDP socket to a pod for one tunnelled flow. `transport` is the stream face the gateway's
    connection writes to (write, write_eof, close): frames in, datagrams out."""

    def __init__(self, conn: Any, connected: Any) -> None:  # a GatewayConnection; its pod_connected
        self.conn = conn
        self.connected = connected
        self.socket: Any = None
        self.transport: Any = None
        self.deframer = DatagramDeframer()

    def connection_made(self, transport: Any) -> None:
        self.socket = transport
        self.transport = self
        self.connected(self)

    # --- the stream face (what the gateway connection calls) ---------------------------------------------
    def write(self, data: bytes) -> None:
        if self.socket is None or self.socket.is_closing():
            return
        for datagram in self.deframer.feed(data):
            self.socket.sendto(datagram)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.close()  # the flow's end: nothing more will come

    def pause_reading(self) -> None:
        pass  # replies past a full TLS buffer are dropped instead (datagram_received)

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()

    # --- the pod's side ----------------------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: Any) -> None:
        tls = self.conn.transport
        if tls is None or tls.is_closing() or tls.get_write_buffer_size() > WRITE_HIGH or len(data) > MAX_DATAGRAM:
            return
        tls.write(frame(frame_datagram(data)))

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, ConnectionRefusedError):  # ICMP port unreachable: tell the sidecar, then end
            tls = self.conn.transport
            if tls is not None and not tls.is_closing():
                tls.write(FIN)
                tls.close()
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        tls = self.conn.transport
        if tls is not None:
            tls.close()


__all__ = ["PodDatagrams", "TunnelEnd"]

"""The one place the sidecar opens a connection to an endpoint, for every codec (HTTP/1 and h2 pools, opaque
TCP): a local endpoint directly; a remote one (`gateway` set: another node's) through that node's mesh gateway,
over mutual TLS with this node's certificate (a warm connection when one is idle: sidecar/mesh/warm.py),
`CONNECT` to the pod, then the codec's protocol speaks to the pod
as if connected directly (a MeshTransport frames its writes and half-close). The UDP flows to one node share
such a stream, opened with `protocol="udp"` (sidecar/mesh/udptunnel.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

from .identity import MeshIdentity
from .stats import MESH_STATS
from .warm import SIZE, WarmPool
from .wire import ALPN_REUSE, FIN, MAX_LINE, Deframer, connect_line, frame, parse_answer

log = logging.getLogger(__name__)

IDENTITY: MeshIdentity | None = None  # set by the sidecar's startup when it has a mesh identity (--mesh-dir)
HANDSHAKE_TIMEOUT = 10.0
DRAIN_TIMEOUT = 5.0  # seconds a stream closed by its codec waits for the gateway's END before the connection goes
DRAIN_BYTES = 64 * 1024  # what a pod may still send after its stream was closed before the connection goes


OPEN: weakref.WeakSet[MeshUpstream] = weakref.WeakSet()  # connections to other nodes' gateways, open now


def configure(identity: MeshIdentity | None) -> None:
    global IDENTITY
    IDENTITY = identity
    if identity is not None:
        identity.on_change.append(lambda _contexts: _recheck(identity))


def _recheck(identity: MeshIdentity) -> None:
    """The trust file changed: a gateway whose node was revoked or deleted meanwhile is left at once."""
    for up in list(OPEN):
        refusal = identity.refusal(up.der) if up.der is not None else None
        if refusal is not None and up.tls is not None:
            log.warning("leaving a connection to a gateway: %s", refusal)
            up.tls.abort()


async def connect_endpoint(factory: Callable[[], asyncio.BaseProtocol], address: str, port: int, *,
                           gateway: str = "", node: str = "", protocol: str = "tcp") -> tuple[Any, Any]:
    """(transport, protocol) connected to `address`:`port`; OSError (or TimeoutError) when it cannot be.
    `protocol="udp"`: the stream of UDP flows to the node of `gateway` (address and port unused)."""
    loop = asyncio.get_running_loop()
    if not gateway:
        if protocol != "tcp":
            raise ValueError("a local UDP endpoint is reached with a datagram socket, not a stream")
        return await loop.create_connection(factory, address, port)
    identity = IDENTITY
    contexts = identity.current if identity is not None else None
    if contexts is None or (contexts.client is None and not identity.plaintext):  # type: ignore[union-attr]
        raise ConnectionRefusedError(f"{address}:{port} is on node {node or '?'} (gateway {gateway}) and this "
                                     "sidecar has no mesh certificate to reach it")
    host, _, gport = gateway.rpartition(":")
    host = host.strip("[]")
    tls = contexts.client
    line = connect_line(address, port, protocol=protocol)
    key = _GatewayKey(host, int(gport), (node or host) if tls is not None else None, tls)
    # a handshake done already (sidecar/mesh/warm.py); not for the one long stream of a node's UDP flows
    warm = WARM.take(key) if tls is not None and protocol == "tcp" else None
    if warm is not None:
        answered: asyncio.Future[tuple[Any, Any]] = loop.create_future()
        warm.start(factory, line, answered)
        try:
            made = await answered
        except ConnectionResetError:  # the gateway closed it as it was taken: a connection of its own
            warm = None
        except BaseException:
            MESH_STATS.outbound_failed += 1
            warm.tls.abort()
            raise
        else:
            MESH_STATS.outbound += 1
            MESH_STATS.outbound_warm += 1
            return made
    answered = loop.create_future()
    try:
        transport, _ = await _dial(
            key, lambda: MeshUpstream(identity, factory, line, answered, key=key))  # type: ignore[arg-type]
    except BaseException:
        MESH_STATS.outbound_failed += 1
        raise
    try:
        made = await answered
    except BaseException:
        MESH_STATS.outbound_failed += 1
        transport.abort()
        raise
    MESH_STATS.outbound += 1
    return made


class _GatewayKey(NamedTuple):
    host: str
    port: int
    server_hostname: str | None
    tls: Any  # the client context it was made with (a rotated certificate: another key)


async def _dial(key: _GatewayKey, protocol: Callable[[], MeshUpstream]) -> tuple[Any, Any]:
    loop = asyncio.get_running_loop()
    return await loop.create_connection(protocol, key.host, key.port, ssl=key.tls,
                                        server_hostname=key.server_hostname,
                                        ssl_handshake_timeout=HANDSHAKE_TIMEOUT if key.tls is not None else None)


async def _warm_one(key: Hashable) -> MeshUpstream:
    """An idle connection to a gateway, its handshake done and checked (OSError when it cannot be made)."""
    assert isinstance(key, _GatewayKey) and IDENTITY is not None
    identity = IDENTITY
    _, up = await _dial(key, lambda: MeshUpstream(identity, key=key))
    if not up.alive():
        raise ConnectionRefusedError("the gateway's certificate is refused")
    return up


# idle connections kept per gateway in use (MESHD_MESH_WARM=0: none, a handshake per new connection)
WARM = WarmPool(_warm_one, size=int(os.environ.get("MESHD_MESH_WARM", SIZE)))


class MeshTransport(asyncio.Transport):
    """What the codec's protocol sees: the TLS transport to the gateway, each write a frame, write_eof a FIN.
    Closing it after the pod's side ended cleanly on meshd/2 gives the connection back for reuse."""

    def __init__(self, up: MeshUpstream) -> None:
        super().__init__()
        self.up = up
        self.tls = up.tls
        self.eof_sent = False
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if data and not self.closed:
            self.tls.write(frame(data if isinstance(data, bytes) else bytes(data)))

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        if not self.eof_sent and not self.closed:
            self.eof_sent = True
            self.tls.write(FIN)

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.up.app_closed()

    def abort(self) -> None:
        if not self.closed:  # (once closed, the connection may be another stream's already)
            self.closed = True
            self.tls.abort()

    def is_closing(self) -> bool:
        return self.closed or bool(self.tls.is_closing())

    def pause_reading(self) -> None:
        if not self.closed:
            self.tls.pause_reading()

    def resume_reading(self) -> None:
        if not self.closed:
            self.tls.resume_reading()

    def is_reading(self) -> bool:
        return not self.closed and bool(self.tls.is_reading())

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if not self.closed:
            self.tls.set_write_buffer_limits(high=high, low=low)

    def get_write_buffer_size(self) -> int:
        return int(self.tls.get_write_buffer_size())

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.tls.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        raise NotImplementedError

    def get_protocol(self) -> asyncio.BaseProtocol:
        raise NotImplementedError


class MeshUpstream(asyncio.Protocol):
    """The protocol on the TLS connection to a gateway: the CONNECT exchange, then frames to the codec's. Made
    without a `line`, it is a warm connection: idle, its handshake done, until `start` sends the CONNECT."""

    def __init__(self, identity: MeshIdentity, factory: Callable[[], asyncio.BaseProtocol] | None = None,
                 line: bytes = b"", answered: asyncio.Future[tuple[Any, Any]] | None = None, *,
                 key: Hashable = None) -> None:
        self.factory = factory
        self.line = line
        self.answered = answered
        self.identity = identity
        self.key = key  # the gateway's key in WARM, where a reused connection goes back
        self.lost = False
        self.reusable = False  # meshd/2 was agreed
        self.pod_fin = False  # the pod's side of the stream ended
        self.dropped = 0  # bytes the pod sent after the codec closed
        self.ended = False  # the gateway's END came while the codec still had the stream open
        self.drain: asyncio.TimerHandle | None = None  # the wait for the gateway's END
        self.tls: Any = None
        self.buf = b""
        self.app: Any = None
        self.wrapper: MeshTransport | None = None
        self.deframer = Deframer()
        self.der: bytes | None = None  # the gateway's certificate

    def connection_made(self, transport: Any) -> None:
        self.tls = transport
        OPEN.add(self)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.der = ssl_object.getpeercert(binary_form=True)
            refusal = self.identity.refusal(self.der)
            if refusal is not None:
                self._fail(ConnectionRefusedError(f"the gateway's certificate is refused: {refusal}"))
                return
            self.reusable = ssl_object.selected_alpn_protocol() == ALPN_REUSE
        if self.line:
            transport.write(self.line)

    def alive(self) -> bool:
        """A warm connection still fit to be taken."""
        return not self.lost and self.line == b"" and self.tls is not None and not self.tls.is_closing()

    def start(self, factory: Callable[[], asyncio.BaseProtocol], line: bytes,
              answered: asyncio.Future[tuple[Any, Any]]) -> None:
        """A warm connection taken: the CONNECT of `line`; `answered` as for a connection made for it."""
        self.factory, self.line, self.answered = factory, line, answered
        self.tls.write(line)

    def close_idle(self) -> None:
        self.lost = True
        if self.tls is not None:
            self.tls.close()

    def app_closed(self) -> None:
        """The codec closed its MeshTransport: on meshd/2, a CONNECT stream sends its FIN and waits for the
        pod's end and the gateway's END to be reused (what the pod still sends is dropped: at most DRAIN_BYTES
        within DRAIN_TIMEOUT, else the connection goes); any other stream closes the connection."""
        app, wrapper = self.app, self.wrapper
        if not (self.reusable and self.line.startswith(b"CONNECT")) or wrapper is None or app is None:
            self.tls.close()
            return
        if not wrapper.eof_sent:
            wrapper.eof_sent = True
            self.tls.write(FIN)
        self.app = None  # (what may still come before END is dropped)
        if not self.tls.is_reading():  # (the codec's back-pressure: END must be read)
            self.tls.resume_reading()
        loop = asyncio.get_running_loop()
        loop.call_soon(app.connection_lost, None)
        if self.ended:  # END came before the codec closed (it had half-closed first)
            self._reused()
            return
        self.drain = loop.call_later(DRAIN_TIMEOUT, self.tls.abort)

    def _reused(self) -> None:
        """The gateway's END: the stream is over; the connection goes back to WARM for the next one."""
        if self.drain is not None:
            self.drain.cancel()
            self.drain = None
        self.factory, self.line, self.answered, self.wrapper = None, b"", None, None
        self.buf, self.deframer, self.pod_fin, self.dropped, self.ended = b"", Deframer(), False, 0, False
        if self.key is not None and not self.lost and not self.tls.is_closing():
            MESH_STATS.outbound_reused += 1
            WARM.put(self.key, self)
        else:
            self.tls.close()

    def _fail(self, error: Exception) -> None:
        if self.answered is not None and not self.answered.done():
            self.answered.set_exception(error)
        self.tls.abort()

    def data_received(self, data: bytes) -> None:
        app = self.app
        if app is None and self.drain is not None:  # closed by its codec: until the gateway's END
            for chunk in self.deframer.feed(data):
                if chunk is None:
                    self.pod_fin = True
                elif not chunk:
                    self._reused()
                    return
                else:
                    self.dropped += len(chunk)
                    if self.dropped > DRAIN_BYTES:  # a pod still streaming: not worth waiting for
                        self.tls.abort()
                        return
            return
        if app is None:
            if self.answered is None or self.factory is None:  # warm: the gateway says nothing before a CONNECT
                self._fail(ConnectionError("the gateway spoke before a CONNECT"))
                return
            self.buf += data
            line, newline, rest = self.buf.partition(b"\n")
            if not newline:
                if len(self.buf) > MAX_LINE:
                    self._fail(ConnectionError("the gateway's answer is not meshd/1"))
                return
            refusal = parse_answer(line)
            if refusal is not None:
                self._fail(ConnectionRefusedError(f"the gateway refused: {refusal}"))
                return
            if self.answered.done():  # the caller gave up (timeout)
                self.tls.abort()
                return
            self.buf = b""
            self.wrapper = MeshTransport(self)
            self.app = app = self.factory()
            app.connection_made(self.wrapper)
            self.answered.set_result((self.wrapper, app))
            if not rest:
                return
            data = rest
        for chunk in self.deframer.feed(data):
            if chunk is None:
                self.pod_fin = True
                if not app.eof_received() and self.wrapper is not None:
                    self.wrapper.close()
            elif not chunk:  # END: after our FIN
                if self.app is None:  # the codec closed: reused now
                    self._reused()
                else:  # a half-close: reused once the codec closes
                    self.ended = True
                return
            elif self.app is not None:
                app.data_received(chunk)

    def eof_received(self) -> bool:
        return False  # a TLS close: the connection ends (a half-close came as a frame before)

    def pause_writing(self) -> None:
        if self.app is not None:
            self.app.pause_writing()

    def resume_writing(self) -> None:
        if self.app is not None:
            self.app.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        OPEN.discard(self)
        self.lost = True
        if self.drain is not None:
            self.drain.cancel()
        if self.answered is not None and not self.answered.done():
            self.answered.set_exception(exc if isinstance(exc, OSError) else
                                        ConnectionResetError(f"the gateway closed the connection{': ' + str(exc) if exc else ''}"))
        if self.app is not None:
            self.app.connection_lost(exc)

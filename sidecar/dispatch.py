"""Between listeners and codecs: each stream listener knows its port's protocol (sidecar/protocols.py);
a known one gets its codec at accept, DETECT reads the first bytes (at most `detect_timeout`, on a timer of
its own, so no connection waits for another) and then hands the connection over with what it read."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from meshd.model.endpoints import PortInfo, ServiceInfo

from .codecs import codec_for, take_over
from .protocols import Protocol, detect, select_protocol
from .proxy import Listener, Route

log = logging.getLogger(__name__)


def port_of(info: ServiceInfo, port_name: str | None) -> PortInfo | None:
    """The Service port a route reaches (None: the first)."""
    for port in info.ports:
        if port_name is None or port.name == port_name:
            return port
    return None


def route_protocol(route: Route) -> Protocol:
    """What a route's Service port carries on a stream listener (unknown yet or UDP: detect)."""
    info = route.service.info
    port = port_of(info, route.port_name) if info is not None else None
    if port is None:
        return Protocol.DETECT
    protocol = select_protocol(port, info.annotations)  # type: ignore[union-attr]
    return Protocol.DETECT if protocol is Protocol.UDP else protocol


def listener_protocol(routes: list[Route]) -> Protocol:
    """One protocol for a listener: its routes' own, or DETECT when they disagree."""
    found = {route_protocol(r) for r in routes}
    return found.pop() if len(found) == 1 else Protocol.DETECT


def acceptor(listener: Listener) -> tuple[Protocol, Callable[[], asyncio.BaseProtocol]]:
    """The listener's protocol and what makes the asyncio Protocol of each connection it accepts."""
    protocol = listener_protocol(listener.routes)
    if protocol is Protocol.DETECT:
        return protocol, lambda: Detector(listener)
    factory = codec_for(protocol)
    return protocol, lambda: factory(listener, b"")


class Detector(asyncio.Protocol):
    """A connection whose protocol is told by its first bytes; silent past the timeout: opaque TCP."""

    __slots__ = ("buf", "listener", "timer", "transport")

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.buf = b""
        self.transport: Any = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.listener.streams.add(self)
        loop = self.listener.loop or asyncio.get_running_loop()
        self.timer = loop.call_later(self.listener.options.detect_timeout, self._timed_out)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        protocol = detect(self.buf)
        if protocol is not None:
            self._hand_over(protocol, eof=False)

    def eof_received(self) -> bool:
        self._hand_over(detect(self.buf) or Protocol.TCP, eof=True)
        return True  # the codec answered eof_received itself (and closed the transport if it wanted)

    def _timed_out(self) -> None:
        self.timer = None
        self._hand_over(detect(self.buf) or Protocol.TCP, eof=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()

    def _stop(self) -> None:
        self.listener.streams.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _hand_over(self, protocol: Protocol, *, eof: bool) -> None:
        self._stop()
        try:
            codec = codec_for(protocol)(self.listener, self.buf)
            take_over(self.transport, codec, self.buf, eof=eof)
        except Exception:  # a codec that fails to start costs this connection only
            log.exception("cannot hand a %s connection to its codec", protocol.value)
            self.transport.abort()

    def idle_tick(self, options: object) -> None:
        pass  # the detection timer bounds a detecting connection

    def close(self) -> None:
        self._stop()
        self.transport.close()

"""The codec registry: which asyncio Protocol serves a connection once its protocol is known.

A codec is a factory `(listener, initial) -> asyncio.Protocol`. The dispatch layer creates it when a
connection is accepted on a port of known protocol (`initial` is b""), or after detection, when it hands the
transport over with `take_over`: `connection_made(transport)`, then `data_received(initial)` with the bytes
detection already read (a codec may look at `initial` in its factory, e.g. to know a preface was seen,
but gets them through `data_received` all the same).

HTTP/2 (h2c, gRPC) has no codec of its own yet: until one is registered (`register(Protocol.H2C, ...)`),
its connections pass as opaque TCP, balanced per connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .protocols import Protocol
from .proxy import ClientConnection, Listener
from .tcp import TcpConnection

CodecFactory = Callable[[Listener, bytes], asyncio.Protocol]

_CODECS: dict[Protocol, CodecFactory] = {}


def register(protocol: Protocol, factory: CodecFactory) -> None:
    """Make `factory` serve `protocol`'s connections (replaces the one registered before)."""
    if protocol in (Protocol.DETECT, Protocol.UDP):
        raise ValueError(f"{protocol} has no stream codec")
    _CODECS[protocol] = factory


def codec_for(protocol: Protocol) -> CodecFactory:
    """The codec serving `protocol` (H2C without a codec of its own: opaque TCP)."""
    factory = _CODECS.get(protocol)
    if factory is None:
        factory = _CODECS[Protocol.TCP]
    return factory


def take_over(transport: Any, protocol: asyncio.Protocol, initial: bytes, *, eof: bool) -> None:
    """Give an accepted `transport` to `protocol`, replaying what was read from it (and its EOF)."""
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    if initial:
        protocol.data_received(initial)
    if eof and not transport.is_closing() and not protocol.eof_received():
        transport.close()


def _http1(listener: Listener, initial: bytes) -> asyncio.Protocol:
    return ClientConnection(listener)


register(Protocol.HTTP1, _http1)
register(Protocol.TCP, TcpConnection)

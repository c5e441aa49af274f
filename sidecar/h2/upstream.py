"""Pooled, multiplexed HTTP/2 (h2c) connections to endpoints.

Each endpoint keeps its HTTP/2 connections in `ep.idle[-port]` (the HTTP/1 pool uses `ep.idle[port]`), so the
Service table's `close_idle` (endpoint removed or changed) and the idle sweep reach them too: `close()` is
graceful, the connection takes no new stream and sends GOAWAY once its last stream ended. A stream is driven
by a `Stream` (the downstream call) through the callbacks below; received DATA is acknowledged only when the
call says the client consumed it (`ack`), so a slow client slows its own stream and nobody else's.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any, Protocol

from ..mesh.connect import connect_endpoint
from ..services import EndpointState
from ..unread import unread_bytes
from . import codec
from .events import (
    CANCEL,
    DATA,
    END,
    GOAWAY,
    HEADERS,
    REFUSED_STREAM,
    RESET,
    SETTINGS,
    TRAILERS,
    WINDOW,
    CodecError,
    Headers,
)
from .grpc import CONNECT_FAILED, LOST, REFUSED
from .stats import H2_STATS
from .writes import CoalescingWriter

log = logging.getLogger(__name__)
STREAM_WINDOW = 1 << 20  # per-stream receive window we advertise
CONNECTION_WINDOW = (1 << 31) - 1  # the connection's: never the limit, streams are (no head-of-line blocking)
DEFAULT_MAX_STREAMS = 100  # until the endpoint's SETTINGS say otherwise


class Stream(Protocol):
    """What a pooled connection calls back on the call that owns a stream."""

    def up_ready(self, up: H2Upstream) -> None: ...
    def up_headers(self, headers: Headers, ended: bool) -> None: ...
    def up_data(self, data: bytes, flow: int) -> None: ...
    def up_trailers(self, headers: Headers) -> None: ...
    def up_end(self) -> None: ...
    def up_failed(self, failure: str, why: str) -> None: ...
    def up_writable(self) -> None: ...


class H2Upstream(CoalescingWriter):
    """One h2c connection to `ep`:`port`, shared by many streams."""

    def __init__(self, ep: EndpointState, port: int) -> None:
        self.ep = ep
        self.port = port
        self.codec = codec.connection(client=True)
        self.streams: dict[int, Stream] = {}
        self.waiting: list[Stream] = []  # calls attached while connecting
        self.transport: Any = None
        self.ready = False
        self.closed = False
        self.draining = False  # no new streams; GOAWAY and close when the last one ends
        self.goaway_received = False  # the endpoint is shutting down
        self.heard = False  # it sent something (an HTTP/2 server's first frame is its SETTINGS)
        self.max_streams = DEFAULT_MAX_STREAMS
        self.idle_since = math.inf  # for sweep_idle: set when the last stream ends
        self._task: asyncio.Task[None] | None = None
        self.batch: set[Any] | None = None  # calls to pump once this read's frames are all handled

    # --- the pool ---------------------------------------------------------------------------------------
    @staticmethod
    def acquire(ep: EndpointState, port: int, *, connect_timeout: float) -> H2Upstream:
        """A pooled connection to `ep`:`port` with room for one more stream (connecting a new one if none)."""
        conns: list[Any] = ep.idle.setdefault(-port, [])
        for up in conns:
            if up.usable():
                return up  # type: ignore[no-any-return]
        up = H2Upstream(ep, port)
        conns.append(up)
        up._task = asyncio.get_running_loop().create_task(up._connect(connect_timeout))
        return up

    def usable(self) -> bool:
        return not (self.closed or self.draining) and len(self.streams) + len(self.waiting) < self.max_streams

    def attach(self, call: Stream) -> None:
        """`call` gets `up_ready(self)` once the connection is up (now, if it is)."""
        self.idle_since = math.inf
        if self.ready:
            call.up_ready(self)
        else:
            self.waiting.append(call)

    def detach(self, call: Stream) -> None:
        if call in self.waiting:
            self.waiting.remove(call)
            self._maybe_idle()

    async def _connect(self, timeout: float) -> None:
        ep, port = self.ep, self.port
        try:
            async with asyncio.timeout(timeout):
                await connect_endpoint(lambda: self, ep.address, port, gateway=ep.gateway, node=ep.node)
        except (OSError, TimeoutError, ValueError) as e:  # (ValueError: an address asyncio cannot use)
            self._forget()
            self.closed = True
            waiting, self.waiting = self.waiting, []
            for call in waiting:
                call.up_failed(CONNECT_FAILED, f"cannot connect to {ep.address}:{port}: {e or 'timeout'}")

    def _forget(self) -> None:
        conns = self.ep.idle.get(-self.port)
        if conns is not None and self in conns:
            conns.remove(self)

    # --- transport events ------------------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        H2_STATS.upstream_connections += 1
        self.codec.start(window=STREAM_WINDOW, conn_window=CONNECTION_WINDOW)
        self.ready = True
        waiting, self.waiting = self.waiting, []
        for call in waiting:
            call.up_ready(self)
        self.flush_now()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.transport is not None and not self.closed:
            rest = unread_bytes(self.transport)  # a write failed first: the endpoint's last frames (unread.py)
            if rest:
                self.data_received(rest)
        if self.transport is not None:
            H2_STATS.upstream_connections -= 1
        self.transport = None
        self.closed = True
        self._forget()
        streams, self.streams = self.streams, {}
        # Streams the endpoint never started may go elsewhere: it closed without a byte (not even its SETTINGS: a
        # server shutting down may still accept), or after GOAWAY, which a graceful stop does once the calls it
        # started are done (grpc-core drops the calls it had not matched).
        if not self.heard:
            failure, why = REFUSED, "closed before the endpoint said anything"
        elif self.goaway_received:
            failure, why = REFUSED, "closed after GOAWAY before answering"
        else:
            failure, why = LOST, "lost"
        for call in streams.values():
            call.up_failed(failure, f"connection to {self.ep.address}:{self.port} {why}")

    def writable(self) -> None:
        for call in list(self.streams.values()):
            call.up_writable()

    def data_received(self, data: bytes) -> None:
        self.heard = True
        try:
            events = self.codec.receive(data)
        except CodecError as e:
            log.warning("endpoint %s:%d broke HTTP/2: %s", self.ep.address, self.port, e)
            self.abort()
            return
        streams = self.streams
        batch = self.batch = set()
        try:
            for kind, sid, payload, extra in events:
                if kind == DATA:
                    call = streams.get(sid)
                    if call is not None:
                        call.up_data(payload, extra)
                    else:
                        self.ack(sid, extra)
                elif kind == HEADERS:
                    call = streams.get(sid)
                    if call is not None:
                        if extra:
                            del streams[sid]
                        call.up_headers(payload, bool(extra))
                elif kind == END:
                    call = streams.pop(sid, None)
                    if call is not None:
                        call.up_end()
                elif kind == TRAILERS:
                    call = streams.pop(sid, None)
                    if call is not None:
                        call.up_trailers(payload)
                elif kind == WINDOW:
                    if sid:
                        call = streams.get(sid)
                        if call is not None:
                            call.up_writable()
                    else:
                        for call in list(streams.values()):
                            call.up_writable()
                elif kind == RESET:
                    call = streams.pop(sid, None)
                    if call is not None:
                        refused = extra == REFUSED_STREAM
                        call.up_failed(REFUSED if refused else LOST, f"stream reset by the endpoint (error {extra})")
                elif kind == SETTINGS:
                    self.max_streams = min(self.codec.remote_max_streams(), 1 << 16)
                    for call in list(streams.values()):
                        call.up_writable()
                elif kind == GOAWAY:
                    self.draining = self.goaway_received = True
                    self._forget()
                    for gone in [s for s in streams if s > sid]:
                        streams.pop(gone).up_failed(REFUSED, "endpoint sent GOAWAY before processing the stream")
        finally:
            self.batch = None
        for call in batch:
            call.pump_response()
        self._maybe_idle()
        self.flush_now()
        failed = self.codec.failed()
        if failed is not None:
            log.warning("endpoint %s:%d broke HTTP/2: %s", self.ep.address, self.port, failed)
            self.abort()

    def late_events(self, events: list[Any]) -> None:
        for kind, sid, _, code in events:
            call = self.streams.pop(sid, None) if kind == RESET else None
            if call is not None:
                refused = code == REFUSED_STREAM
                call.up_failed(REFUSED if refused else LOST, f"stream not sent (error {code})")
        self._maybe_idle()

    # --- streams ----------------------------------------------------------------------------------------
    def start_stream(self, call: Stream, headers: Headers, *, end: bool) -> int:
        sid = self.codec.send_request(headers, end=end)
        self.streams[sid] = call
        self.flush()
        return sid

    def send_data(self, sid: int, data: bytes | memoryview, *, end: bool = False) -> int:
        """Send as much of `data` as flow control lets through now (all of it ends the stream if `end`)."""
        if self.write_paused or self.closed:
            return 0
        codec = self.codec
        room = min(codec.window(sid), len(data))
        if room <= 0 and data:
            return 0
        try:
            codec.send_data(sid, data[:room] if room < len(data) else data, end=end and room == len(data))
        except CodecError:
            return 0
        self.flush()
        return room

    def send_trailers(self, sid: int, headers: Headers) -> None:
        try:
            self.codec.send_headers(sid, headers, end=True)
        except CodecError:
            return
        self.flush()

    def ack(self, sid: int, n: int) -> None:
        """The client consumed `n` bytes of stream `sid`: let the endpoint send more."""
        if n and not self.closed:
            self.codec.ack(sid, n)
            self.flush()

    def reset(self, sid: int, code: int = CANCEL) -> None:
        self.streams.pop(sid, None)
        if not self.closed:
            self.codec.reset(sid, code)
            self.flush()
        self._maybe_idle()

    def _maybe_idle(self) -> None:
        if not self.streams and not self.waiting:
            self.idle_since = time.monotonic()
            if self.draining:
                self._goaway()

    # --- writes and closing ------------------------------------------------------------------------------
    def close(self) -> None:
        """Graceful: no new streams; GOAWAY once the last one ended (a draining endpoint's in-flight finish)."""
        self.draining = True
        self._forget()
        if not self.streams and not self.waiting:
            self._goaway()

    def _goaway(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.transport is not None:
            self.codec.goaway()
            self.flush_now()
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        self._forget()
        if self.transport is not None:
            self.transport.abort()

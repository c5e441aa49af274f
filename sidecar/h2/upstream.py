"""Pooled, multiplexed HTTP/2 (h2c) connections to endpoints.

Each endpoint keeps its HTTP/2 connections in `ep.idle[-port]` (the HTTP/1 pool uses `ep.idle[port]`), so the
Service table's `close_idle` (endpoint removed or changed) and the idle sweep reach them too: `close()` is
graceful, the connection takes no new stream and sends GOAWAY once its last stream ended. A stream is driven
by a `Stream` (the downstream call) through the callbacks below; received DATA is acknowledged only when the
call says the client consumed it (`ack`), so a slow client slows its own stream and nobody else's.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from typing import Any, Protocol

import hpack.hpack
import hpack.huffman_table
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import H2Error
from h2.settings import SettingCodes
from hyperframe.frame import GoAwayFrame

from ..mesh.connect import connect_endpoint
from ..services import EndpointState
from .grpc import CONNECT_FAILED, LOST, REFUSED
from .stats import H2_STATS
from .writes import CoalescingWriter

log = logging.getLogger(__name__)


class _Quiet:
    """hpack calls log.debug ~25 times per header block; its arguments are never formatted at our log level,
    but the calls alone cost ~10% of a request. The sidecar never wants hpack's debug lines."""

    def debug(self, *args: object, **kwargs: object) -> None:
        pass


hpack.hpack.log = _Quiet()  # type: ignore[assignment]
_decode_huffman = hpack.huffman_table.decode_huffman


@functools.lru_cache(maxsize=2048)
def _decode_huffman_cached(data: bytes) -> bytes:
    return _decode_huffman(data)


def decode_huffman(data: bytes) -> bytes:
    """hpack's bit-by-bit Huffman decoder is the costliest step of a request; the values it decodes repeat
    (servers such as nginx send their response headers as literals every time), so short ones are memoized
    (at most 2,048 of <= 128 bytes: bounded memory whatever clients send)."""
    return _decode_huffman_cached(data) if len(data) <= 128 else _decode_huffman(data)


hpack.hpack.decode_huffman = decode_huffman  # type: ignore[assignment]
STREAM_WINDOW = 1 << 20  # per-stream receive window we advertise
CONNECTION_WINDOW = (1 << 31) - 1  # the connection's: never the limit, streams are (no head-of-line blocking)
DEFAULT_MAX_STREAMS = 100  # until the endpoint's SETTINGS say otherwise
Headers = list[tuple[bytes, bytes]]
# headers going out were validated when they came in (h2's checks cost more than the rest of a request)
UPSTREAM_CONFIG = H2Configuration(
    client_side=True,
    header_encoding=None,
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
    validate_inbound_headers=False,
    normalize_inbound_headers=False,
)
CLIENT_CONFIG = H2Configuration(  # a client's headers are checked (malformed: the stream is reset)
    client_side=False, header_encoding=None, validate_outbound_headers=False, normalize_outbound_headers=False
)


class Connection(H2Connection):
    """h2's connection, except that a graceful GOAWAY (NO_ERROR) leaves the streams already open running (h2
    closes the whole connection on any GOAWAY; RFC 9113 6.8 lets streams up to the last stream id finish)."""

    def _receive_goaway_frame(self, frame: Any) -> Any:
        state = self.state_machine.state
        result = super()._receive_goaway_frame(frame)
        if frame.error_code == 0:
            self.state_machine.state = state
        return result


def goaway_frame(last_stream_id: int, code: int = 0) -> bytes:
    """A GOAWAY frame written beside h2 (whose own would close every stream at once)."""
    frame = GoAwayFrame(0)
    frame.last_stream_id = last_stream_id
    frame.error_code = code
    return bytes(frame.serialize())


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
        self.h2 = Connection(UPSTREAM_CONFIG)
        self.streams: dict[int, Stream] = {}
        self.waiting: list[Stream] = []  # calls attached while connecting
        self.transport: Any = None
        self.ready = False
        self.closed = False
        self.draining = False  # no new streams; GOAWAY and close when the last one ends
        self.goaway_received = False  # the endpoint is shutting down
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
        h2 = self.h2
        h2.initiate_connection()
        h2.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW, SettingCodes.ENABLE_PUSH: 0})
        h2.increment_flow_control_window(CONNECTION_WINDOW - h2.inbound_flow_control_window)
        self.ready = True
        waiting, self.waiting = self.waiting, []
        for call in waiting:
            call.up_ready(self)
        self.flush_now()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            H2_STATS.upstream_connections -= 1
        self.transport = None
        self.closed = True
        self._forget()
        streams, self.streams = self.streams, {}
        for call in streams.values():
            call.up_failed(LOST, f"connection to {self.ep.address}:{self.port} lost")

    def writable(self) -> None:
        for call in list(self.streams.values()):
            call.up_writable()

    def data_received(self, data: bytes) -> None:
        try:
            events: list[Any] = self.h2.receive_data(data)
        except H2Error as e:
            log.warning("endpoint %s:%d broke HTTP/2: %s", self.ep.address, self.port, e)
            self.abort()
            return
        streams = self.streams
        batch = self.batch = set()
        try:
            for ev in events:
                t = type(ev)
                if t is DataReceived:
                    call = streams.get(ev.stream_id)
                    if call is not None:
                        call.up_data(ev.data, ev.flow_controlled_length)
                    else:
                        self.ack(ev.stream_id, ev.flow_controlled_length)
                elif t is ResponseReceived:
                    call = streams.get(ev.stream_id)
                    if call is not None:
                        ended = ev.stream_ended is not None
                        if ended:
                            del streams[ev.stream_id]
                        call.up_headers(ev.headers, ended)
                elif t is StreamEnded:
                    call = streams.pop(ev.stream_id, None)
                    if call is not None:
                        call.up_end()
                elif t is TrailersReceived:
                    call = streams.pop(ev.stream_id, None)
                    if call is not None:
                        call.up_trailers(ev.headers)
                elif t is WindowUpdated:
                    if ev.stream_id:
                        call = streams.get(ev.stream_id)
                        if call is not None:
                            call.up_writable()
                    else:
                        for call in list(streams.values()):
                            call.up_writable()
                elif t is StreamReset:
                    call = streams.pop(ev.stream_id, None)
                    if call is not None:
                        refused = ev.error_code == ErrorCodes.REFUSED_STREAM
                        call.up_failed(
                            REFUSED if refused else LOST, f"stream reset by the endpoint ({ev.error_code!r})"
                        )
                elif t is RemoteSettingsChanged:
                    self.max_streams = min(self.h2.remote_settings.max_concurrent_streams, 1 << 16)
                    for call in list(streams.values()):
                        call.up_writable()
                elif t is ConnectionTerminated:
                    self.draining = self.goaway_received = True
                    self._forget()
                    last = ev.last_stream_id if ev.last_stream_id is not None else 0
                    for sid in [s for s in streams if s > last]:
                        streams.pop(sid).up_failed(
                            REFUSED, "endpoint sent GOAWAY before processing the stream"
                        )
        finally:
            self.batch = None
        for call in batch:
            call.pump_response()
        self._maybe_idle()
        self.flush_now()

    # --- streams ----------------------------------------------------------------------------------------
    def start_stream(self, call: Stream, headers: Headers, *, end: bool) -> int:
        sid: int = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, headers, end_stream=end)
        self.streams[sid] = call
        self.flush()
        return sid

    def send_data(self, sid: int, data: bytes | memoryview, *, end: bool = False) -> int:
        """Send as much of `data` as flow control lets through now (all of it ends the stream if `end`)."""
        if self.write_paused or self.closed:
            return 0
        h2 = self.h2
        try:
            room = min(h2.local_flow_control_window(sid), len(data))
            frame = h2.max_outbound_frame_size
            sent = 0
            while sent < room:
                n = min(frame, room - sent)
                last = end and sent + n == len(data)
                h2.send_data(sid, data[sent : sent + n], end_stream=last)
                sent += n
            if end and not data:
                h2.end_stream(sid)
        except H2Error:
            return 0
        self.flush()
        return sent

    def send_trailers(self, sid: int, headers: Headers) -> None:
        try:
            self.h2.send_headers(sid, headers, end_stream=True)
        except H2Error:
            return
        self.flush()

    def ack(self, sid: int, n: int) -> None:
        """The client consumed `n` bytes of stream `sid`: let the endpoint send more."""
        if n and not self.closed:
            try:
                self.h2.acknowledge_received_data(n, sid)
            except H2Error:
                return
            self.flush()

    def reset(self, sid: int, code: int = ErrorCodes.CANCEL) -> None:
        self.streams.pop(sid, None)
        if not self.closed:
            try:
                self.h2.reset_stream(sid, code)
            except H2Error:
                pass
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
            try:
                self.h2.close_connection()
            except H2Error:
                pass
            self.flush_now()
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        self._forget()
        if self.transport is not None:
            self.transport.abort()

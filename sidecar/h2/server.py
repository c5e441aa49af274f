"""The HTTP/2 codec's downstream side: one `H2Server` per client connection (h2c, prior knowledge).

It turns the client's frames into `Call`s, one per stream, each balanced on its own (sidecar/h2/call.py), and
writes their responses back. A client that breaks the protocol gets GOAWAY PROTOCOL_ERROR and a close; the
connection never raises into the loop. Data the client sends is acknowledged as the endpoint takes it.
"""

from __future__ import annotations

import logging
from typing import Any

from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import FrameTooLargeError, H2Error
from h2.settings import SettingCodes

from ..proxy import Listener, ProxyOptions
from .call import Call
from .stats import H2_STATS
from .upgrade import Upgrade, parse_upgrade
from .upstream import CLIENT_CONFIG, CONNECTION_WINDOW, STREAM_WINDOW, Connection, goaway_frame
from .writes import CoalescingWriter

log = logging.getLogger(__name__)
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_CONCURRENT_STREAMS = 256


def factory(listener: Listener, initial: bytes) -> H2Server:
    """The codec (sidecar/codecs.py): the dispatch layer replays `initial` through data_received."""
    return H2Server(listener)


class H2Server(CoalescingWriter):
    """One client connection, in `listener.streams` while open (idle_tick, drain and close for the listener)."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.h2 = Connection(CLIENT_CONFIG)
        self.calls: dict[int, Call] = {}
        self.transport: Any = None
        self.closed = False
        self.goaway = False  # sent or received: no new streams; close once the last call ended
        self.peer_ip = "unknown"
        self.active = False  # set on every read; idle_tick counts quiet seconds without calls
        self.quiet = 0
        self.started = False  # the connection speaks HTTP/2 (preface seen, or upgraded)
        self.head = b""  # the first bytes, until they tell preface from an HTTP/1.1 upgrade

    # --- transport events ------------------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer_ip = peer[0]
        self.listener.streams.add(self)
        H2_STATS.connections += 1
        # our SETTINGS wait for the client's first bytes: an HTTP/1.1 Upgrade must get its 101 first

    def _start(self, upgrade: Upgrade | None = None) -> None:
        h2 = self.h2
        if upgrade is None:
            h2.initiate_connection()
        else:
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
            )
            h2.initiate_upgrade_connection(upgrade.settings)
        h2.update_settings({
            SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
        })  # fmt: skip
        h2.increment_flow_control_window(CONNECTION_WINDOW - h2.inbound_flow_control_window)
        self.flush_now()

    def _first_bytes(self, data: bytes) -> bytes | None:
        """Before the connection is HTTP/2: the preface (start), or an HTTP/1.1 Upgrade: h2c (101, then its
        request is stream 1), else a 400. The bytes to feed h2 next, or None while undecided or refused."""
        head = self.head + data
        if head[: len(PREFACE)] == PREFACE[: len(head)]:
            if len(head) < len(PREFACE):
                self.head = head
                return None
            self.head = b""
            self._start()
            return head
        result = parse_upgrade(head)
        if result is None:
            self.head = head
            return None
        self.head = b""
        if isinstance(result, str):
            body = result.encode() + b"\n"
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\n"
                                 b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))  # fmt: skip
            self.started = True
            self.close()
            return None
        self._start(result)
        call = Call(self, 1, result.headers)
        self.calls[1] = call
        call.start(ended=True)
        return result.rest

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed and self.transport is None:
            return
        self.closed = True
        self.transport = None
        self.listener.streams.discard(self)
        H2_STATS.connections -= 1
        calls, self.calls = self.calls, {}
        for call in calls.values():
            call.client_gone()

    def writable(self) -> None:
        for call in list(self.calls.values()):
            call.client_writable()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.active = True
        if not self.started:
            first = self._first_bytes(data)
            if first is None:
                return
            self.started = True
            data = first
        h2 = self.h2
        try:
            events: list[Any] = h2.receive_data(data)
            pending = h2.incoming_buffer._data  # h2 waits for a whole frame before checking its length
            if len(pending) >= 9 and int.from_bytes(pending[:3], "big") > h2.max_inbound_frame_size:
                raise FrameTooLargeError("frame larger than SETTINGS_MAX_FRAME_SIZE")
        except H2Error as e:
            self.protocol_error(e)
            return
        calls = self.calls
        for ev in events:
            t = type(ev)
            if t is DataReceived:
                call = calls.get(ev.stream_id)
                if call is not None:
                    call.request_data(ev.data, ev.flow_controlled_length)
                else:
                    self.ack(ev.stream_id, ev.flow_controlled_length)
            elif t is RequestReceived:
                if self.goaway:
                    self.reset(ev.stream_id, ErrorCodes.REFUSED_STREAM)
                    continue
                call = Call(self, ev.stream_id, ev.headers)
                calls[ev.stream_id] = call
                call.start(ended=ev.stream_ended is not None)
            elif t is StreamEnded:
                call = calls.get(ev.stream_id)
                if call is not None:
                    call.request_end(None)
            elif t is TrailersReceived:
                call = calls.get(ev.stream_id)
                if call is not None:
                    call.request_end(ev.headers)
            elif t is WindowUpdated or t is RemoteSettingsChanged:
                sid = getattr(ev, "stream_id", 0)
                if sid:
                    call = calls.get(sid)
                    if call is not None:
                        call.client_writable()
                else:
                    for call in list(calls.values()):
                        call.client_writable()
            elif t is StreamReset:
                call = calls.pop(ev.stream_id, None)
                if call is not None:
                    call.client_gone()
            elif t is ConnectionTerminated:
                self.goaway = True
                if ev.error_code:
                    self.close()
                    return
        self.flush_now()
        if self.goaway and not self.calls:
            self.close()

    # --- used by calls ----------------------------------------------------------------------------------
    def call_done(self, sid: int) -> None:
        self.calls.pop(sid, None)
        if self.goaway and not self.calls:
            self.close()

    def ack(self, sid: int, n: int) -> None:
        if n and not self.closed:
            try:
                self.h2.acknowledge_received_data(n, sid)
            except H2Error:
                return
            self.flush()

    def reset(self, sid: int, code: int) -> None:
        if not self.closed:
            try:
                self.h2.reset_stream(sid, code)
            except H2Error:
                pass
            self.flush()

    # --- endings ----------------------------------------------------------------------------------------
    def protocol_error(self, error: Exception) -> None:
        """The client broke HTTP/2: GOAWAY PROTOCOL_ERROR (or the precise code h2 names), then close."""
        H2_STATS.protocol_errors += 1
        code = getattr(error, "error_code", None) or ErrorCodes.PROTOCOL_ERROR
        log.info("client %s broke HTTP/2: %s; GOAWAY %s", self.peer_ip, error, ErrorCodes(code).name)
        try:
            self.h2.close_connection(error_code=code, additional_data=str(error).encode()[:256])
        except H2Error:
            pass
        self.flush_now()
        self.close()

    def drain(self) -> None:
        """Stop taking streams (GOAWAY NO_ERROR): in-flight calls finish, then the connection closes."""
        if self.closed or self.goaway:
            return
        self.goaway = True
        self.flush_now()
        self.transport.write(goaway_frame(self.h2.highest_inbound_stream_id))
        if not self.calls:
            self.close()

    def idle_tick(self, options: ProxyOptions) -> None:
        """Once a second: a connection without calls for `client_idle_timeout` gets GOAWAY and closes."""
        if self.active or self.calls:
            self.active = False
            self.quiet = 0
            return
        self.quiet += 1
        if self.quiet >= options.client_idle_timeout:
            self.drain()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.flush_now()
            self.transport.close()

"""The HTTP/2 codec's downstream side: one `H2Server` per client connection (h2c, prior knowledge).

It turns the client's frames into `Call`s, one per stream, each balanced on its own (sidecar/h2/call.py), and
writes their responses back. A client that breaks the protocol gets GOAWAY PROTOCOL_ERROR and a close; the
connection never raises into the loop. Data the client sends is acknowledged as the endpoint takes it.
"""

from __future__ import annotations

import logging
from typing import Any

from ..proxy import Listener, ProxyOptions
from . import codec
from .call import Call
from .events import (
    DATA,
    END,
    ERROR_NAMES,
    GOAWAY,
    HEADERS,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    RESET,
    SETTINGS,
    TRAILERS,
    WINDOW,
    CodecError,
)
from .stats import H2_STATS
from .upgrade import Upgrade, parse_upgrade
from .upstream import CONNECTION_WINDOW, STREAM_WINDOW
from .writes import CoalescingWriter

log = logging.getLogger(__name__)
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_CONCURRENT_STREAMS = 256


_announced = False


def factory(listener: Listener, initial: bytes) -> H2Server:
    """The codec (sidecar/codecs.py): the dispatch layer replays `initial` through data_received."""
    global _announced
    if not _announced:
        _announced = True
        why = f"; {codec.FALLBACK_WHY}" if codec.FALLBACK_WHY else ""
        log.info("HTTP/2 codec: %s%s", codec.NAME, why)
    return H2Server(listener)


class H2Server(CoalescingWriter):
    """One client connection, in `listener.streams` while open (idle_tick, drain and close for the listener)."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.codec = codec.connection(client=False)
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
        if upgrade is None:
            self.codec.start(window=STREAM_WINDOW, conn_window=CONNECTION_WINDOW, max_streams=MAX_CONCURRENT_STREAMS)
        else:
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
            )
            self.codec.start_upgrade(upgrade.settings, window=STREAM_WINDOW, conn_window=CONNECTION_WINDOW,
                                     max_streams=MAX_CONCURRENT_STREAMS)  # fmt: skip
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
        try:
            self._start(result)
        except CodecError as e:
            self.protocol_error(e)
            return None
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
        try:
            events = self.codec.receive(data)
        except CodecError as e:
            self.protocol_error(e)
            return
        calls = self.calls
        for kind, sid, payload, extra in events:
            if kind == DATA:
                call = calls.get(sid)
                if call is not None:
                    call.request_data(payload, extra)
                else:
                    self.ack(sid, extra)
            elif kind == HEADERS:
                if self.goaway:
                    self.reset(sid, REFUSED_STREAM)
                    continue
                call = Call(self, sid, payload)
                calls[sid] = call
                call.start(ended=bool(extra))
            elif kind == END:
                call = calls.get(sid)
                if call is not None:
                    call.request_end(None)
            elif kind == TRAILERS:
                call = calls.get(sid)
                if call is not None:
                    call.request_end(payload)
            elif kind == WINDOW or kind == SETTINGS:
                if sid:
                    call = calls.get(sid)
                    if call is not None:
                        call.client_writable()
                else:
                    for call in list(calls.values()):
                        call.client_writable()
            elif kind == RESET:
                call = calls.pop(sid, None)
                if call is not None:
                    call.client_gone()
            elif kind == GOAWAY:
                self.goaway = True
                if extra:
                    self.close()
                    return
        self.flush_now()
        failed = self.codec.failed()
        if failed is not None:  # nghttp2 answered a broken client with GOAWAY itself
            self._count_protocol_error(failed)
            self.close()
        elif self.goaway and not self.calls:
            self.close()

    # --- used by calls ----------------------------------------------------------------------------------
    def call_done(self, sid: int) -> None:
        self.calls.pop(sid, None)
        if self.goaway and not self.calls:
            self.close()

    def ack(self, sid: int, n: int) -> None:
        if n and not self.closed:
            self.codec.ack(sid, n)
            self.flush()

    def reset(self, sid: int, code: int) -> None:
        if not self.closed:
            self.codec.reset(sid, code)
            self.flush()

    # --- endings ----------------------------------------------------------------------------------------
    def protocol_error(self, error: CodecError) -> None:
        """The client broke HTTP/2: GOAWAY PROTOCOL_ERROR (or the precise code the codec names), then close."""
        code = error.error_code or PROTOCOL_ERROR
        self._count_protocol_error(f"{error}; GOAWAY {ERROR_NAMES.get(code, code)}")
        self.codec.goaway(code, str(error).encode()[:256])
        self.flush_now()
        self.close()

    def _count_protocol_error(self, why: str) -> None:
        H2_STATS.protocol_errors += 1
        log.info("client %s broke HTTP/2: %s", self.peer_ip, why)

    def drain(self) -> None:
        """Stop taking streams (GOAWAY NO_ERROR): in-flight calls finish, then the connection closes."""
        if self.closed or self.goaway:
            return
        self.goaway = True
        self.codec.goaway()
        self.flush_now()
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

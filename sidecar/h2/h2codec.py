"""The pure-Python HTTP/2 codec: python-hyper's `h2` behind the interface of native.py (the fallback when the
compiled nghttp2 codec is missing, or chosen with MESHD_H2_CODEC=h2; see codec.py)."""

from __future__ import annotations

import functools
from typing import Any

import hpack.hpack
import hpack.huffman_table
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    InformationalResponseReceived,
    RemoteSettingsChanged,
    RequestReceived,
    ResponseReceived,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import FrameTooLargeError, H2Error
from h2.settings import SettingCodes
from hyperframe.frame import GoAwayFrame

from .events import DATA, END, GOAWAY, HEADERS, RESET, SETTINGS, TRAILERS, WINDOW, CodecError, Event, Headers

NAME = f"h2 {__import__('h2').__version__} (pure Python)"


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


class H2Codec:
    """One connection's h2 state, with native.NativeConnection's methods and events."""

    def __init__(self, *, client: bool) -> None:
        self.h2 = Connection(UPSTREAM_CONFIG if client else CLIENT_CONFIG)
        self.extra = b""  # a graceful GOAWAY, written after what h2 queued
        self.late: list[Event] = []  # (always empty: h2 refuses a stream when asked)

    def _settings(self, window: int, conn_window: int, max_streams: int | None) -> None:
        h2 = self.h2
        if max_streams is None:
            h2.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: window, SettingCodes.ENABLE_PUSH: 0})
        else:
            h2.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: window,
                                SettingCodes.MAX_CONCURRENT_STREAMS: max_streams})  # fmt: skip
        h2.increment_flow_control_window(conn_window - h2.inbound_flow_control_window)

    def start(self, *, window: int, conn_window: int, max_streams: int | None = None) -> None:
        self.h2.initiate_connection()
        self._settings(window, conn_window, max_streams)

    def start_upgrade(self, settings: bytes, *, window: int, conn_window: int, max_streams: int) -> None:
        self.h2.initiate_upgrade_connection(settings)
        self._settings(window, conn_window, max_streams)

    def receive(self, data: bytes) -> list[Event]:
        h2 = self.h2
        try:
            received: list[Any] = h2.receive_data(data)
            pending = h2.incoming_buffer._data  # h2 waits for a whole frame before checking its length
            if len(pending) >= 9 and int.from_bytes(pending[:3], "big") > h2.max_inbound_frame_size:
                raise FrameTooLargeError("frame larger than SETTINGS_MAX_FRAME_SIZE")
        except H2Error as e:
            raise CodecError(str(e) or type(e).__name__, getattr(e, "error_code", None) or 1) from e
        events: list[Event] = []
        append = events.append
        for ev in received:
            t = type(ev)
            if t is DataReceived:
                if ev.flow_controlled_length:  # (an empty DATA frame that only ends the stream: END alone)
                    append((DATA, ev.stream_id, ev.data, ev.flow_controlled_length))
                if ev.stream_ended is not None:
                    append((END, ev.stream_id, None, 0))
            elif t is RequestReceived or t is ResponseReceived or t is InformationalResponseReceived:
                append((HEADERS, ev.stream_id, ev.headers, getattr(ev, "stream_ended", None) is not None))
            elif t is TrailersReceived:
                append((TRAILERS, ev.stream_id, ev.headers, 1))
            elif t is WindowUpdated:
                append((WINDOW, ev.stream_id, None, 0))
            elif t is RemoteSettingsChanged:
                append((SETTINGS, 0, None, 0))
            elif t is StreamReset:
                append((RESET, ev.stream_id, None, int(ev.error_code)))
            elif t is ConnectionTerminated:
                last = ev.last_stream_id if ev.last_stream_id is not None else 0
                append((GOAWAY, last, None, int(ev.error_code)))
        return events

    def failed(self) -> str | None:
        return None  # (h2 raises from receive instead)

    def send_request(self, headers: Headers, *, end: bool) -> int:
        try:
            sid: int = self.h2.get_next_available_stream_id()
            self.h2.send_headers(sid, headers, end_stream=end)
        except H2Error as e:
            raise CodecError(str(e)) from e
        return sid

    def send_headers(self, sid: int, headers: Headers, *, end: bool) -> None:
        try:
            self.h2.send_headers(sid, headers, end_stream=end)
        except H2Error as e:
            raise CodecError(str(e)) from e

    def send_data(self, sid: int, data: bytes | memoryview, *, end: bool = False) -> None:
        h2 = self.h2
        frame = h2.max_outbound_frame_size
        size = len(data)
        try:
            if size <= frame:
                h2.send_data(sid, data, end_stream=end)
                return
            for i in range(0, size, frame):
                h2.send_data(sid, data[i : i + frame], end_stream=end and i + frame >= size)
        except H2Error as e:
            raise CodecError(str(e)) from e

    def end_stream(self, sid: int) -> None:
        try:
            self.h2.end_stream(sid)
        except H2Error as e:
            raise CodecError(str(e)) from e

    def window(self, sid: int) -> int:
        try:
            return self.h2.local_flow_control_window(sid)  # type: ignore[no-any-return]
        except H2Error:
            return 0

    def ack(self, sid: int, n: int) -> None:
        try:
            self.h2.acknowledge_received_data(n, sid)
        except H2Error:
            pass

    def reset(self, sid: int, code: int) -> None:
        try:
            self.h2.reset_stream(sid, code)
        except H2Error:
            pass

    def goaway(self, code: int = 0, message: bytes = b"", *, last_stream_id: int | None = None) -> None:
        if code:
            try:
                self.h2.close_connection(error_code=code, additional_data=message)
            except H2Error:
                pass
        else:
            last = self.h2.highest_inbound_stream_id if last_stream_id is None else last_stream_id
            self.extra += goaway_frame(last)

    def last_stream_id(self) -> int:
        return self.h2.highest_inbound_stream_id  # type: ignore[no-any-return]

    def remote_max_streams(self) -> int:
        return self.h2.remote_settings.max_concurrent_streams  # type: ignore[no-any-return]

    def data_to_send(self) -> bytes:
        data: bytes = self.h2.data_to_send()
        if self.extra:
            data, self.extra = data + self.extra, b""
        return data

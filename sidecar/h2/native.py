"""The native HTTP/2 codec: nghttp2's session (sidecar/h2/nghttp2_shim.c, bound with cffi in API mode).

One `receive` is one call into C and two copies out of it (the event records, their bytes); one
`data_to_send` is one call. Importing this module fails (ImportError) when the compiled `_nghttp2` is missing:
codec.py then falls back to the pure-Python `h2`.
"""

from __future__ import annotations

import base64
from itertools import chain

from ._nghttp2 import ffi, lib  # type: ignore[import-not-found]
from .events import DATA, HEADERS, TRAILERS, CodecError, Event, Headers

NAME = f"nghttp2 {ffi.string(lib.shim_version()).decode()}"
_unpack = ffi.unpack
_buffer = ffi.buffer
_shim_recv = lib.shim_recv
_shim_send = lib.shim_send
_shim_data = lib.shim_data
_shim_headers = lib.shim_headers
_shim_window = lib.shim_window
_shim_consume = lib.shim_consume
_flatten = chain.from_iterable


def _error(code: int, what: str) -> CodecError:
    return CodecError(f"{what}: {ffi.string(lib.shim_strerror(code)).decode()}")


def _fields(block: bytes) -> Headers:
    parts = block.split(b"\0")
    return list(zip(parts[::2], parts[1::2]))


def _block(headers: Headers) -> bytes:
    return b"\0".join(_flatten(headers))


class NativeConnection:
    """One HTTP/2 connection's codec state, either side (`client` True: we open the streams)."""

    def __init__(self, *, client: bool) -> None:
        sh = lib.shim_new(0 if client else 1)
        if sh == ffi.NULL:
            raise MemoryError("nghttp2 session")
        self.sh = ffi.gc(sh, lib.shim_del)
        self.late: list[Event] = []  # RESET events a send produced (requests refused after a GOAWAY)

    # --- starting -----------------------------------------------------------------------------------------
    def start(self, *, window: int, conn_window: int, max_streams: int | None = None) -> None:
        """Our SETTINGS (initial stream window, max concurrent streams; push off on a client) and the
        connection's receive window."""
        push = 0 if max_streams is None else -1
        rv = lib.shim_settings(self.sh, window, -1 if max_streams is None else max_streams, push, conn_window)
        if rv:
            raise _error(rv, "settings")

    def start_upgrade(self, settings: bytes, *, window: int, conn_window: int, max_streams: int) -> None:
        """An HTTP/1.1 Upgrade: h2c (server side): `settings` is the HTTP2-Settings header; stream 1 is its
        request, half-closed by the client."""
        payload = base64.urlsafe_b64decode(settings + b"=" * (-len(settings) % 4))
        rv = lib.shim_upgrade(self.sh, payload, len(payload))
        if rv:
            raise _error(rv, "upgrade")
        self.start(window=window, conn_window=conn_window, max_streams=max_streams)

    # --- receiving ----------------------------------------------------------------------------------------
    def receive(self, data: bytes) -> list[Event]:
        sh = self.sh
        rv = _shim_recv(sh, data, len(data))
        if rv:
            raise _error(rv, "receive")
        n = sh.ev_len
        if not n:
            return []
        records = _unpack(sh.ev, n * 5)
        blob = _buffer(sh.buf, sh.buf_len)[:]
        events: list[Event] = []
        append = events.append
        it = iter(records)
        for kind, sid, off, length, extra in zip(it, it, it, it, it):
            if kind == DATA:
                append((DATA, sid, blob[off : off + length], extra))
            elif kind == HEADERS or kind == TRAILERS:
                append((kind, sid, _fields(blob[off : off + length]), extra))
            else:
                append((kind, sid, None, extra))
        return events

    def failed(self) -> str | None:
        """After our GOAWAY with an error went out (the peer broke the protocol): why, else None."""
        if not self.sh.term:
            return None
        why = ffi.string(self.sh.why).decode(errors="replace")
        return f"{why or 'protocol error'} (GOAWAY error code {self.sh.term})"

    def error_code(self) -> int:
        return int(self.sh.term)

    # --- sending ------------------------------------------------------------------------------------------
    def send_request(self, headers: Headers, *, end: bool) -> int:
        block = _block(headers)
        sid: int = _shim_headers(self.sh, -1, block, len(block), end)
        if sid < 0:
            raise _error(sid, "request")
        return sid

    def send_headers(self, sid: int, headers: Headers, *, end: bool) -> None:
        """A response head, or trailers (`end`) once the stream's DATA started."""
        block = _block(headers)
        rv = _shim_headers(self.sh, sid, block, len(block), end)
        if rv < 0:
            raise _error(rv, "headers")

    def send_data(self, sid: int, data: bytes | memoryview, *, end: bool = False) -> None:
        """Queue `data` (the caller keeps to `window(sid)`); nghttp2 frames it."""
        rv = _shim_data(self.sh, sid, ffi.from_buffer(data), len(data), end)
        if rv:
            raise _error(rv, "data")

    def end_stream(self, sid: int) -> None:
        rv = _shim_data(self.sh, sid, b"", 0, 1)
        if rv:
            raise _error(rv, "end stream")

    def window(self, sid: int) -> int:
        """Bytes we may queue on `sid` now (the peer's stream and connection windows, less what waits)."""
        return _shim_window(self.sh, sid)  # type: ignore[no-any-return]

    def ack(self, sid: int, n: int) -> None:
        """The application consumed `n` bytes of `sid`: the peer may send them again (WINDOW_UPDATE)."""
        _shim_consume(self.sh, sid, n)

    def reset(self, sid: int, code: int) -> None:
        lib.shim_reset(self.sh, sid, code)

    def goaway(self, code: int = 0, message: bytes = b"", *, last_stream_id: int | None = None) -> None:
        """GOAWAY: with NO_ERROR the streams up to `last_stream_id` (default: the last one we took) finish."""
        last = lib.shim_last_stream(self.sh) if last_stream_id is None else last_stream_id
        lib.shim_goaway(self.sh, last, code, message, len(message))

    def last_stream_id(self) -> int:
        return int(lib.shim_last_stream(self.sh))

    def remote_max_streams(self) -> int:
        return int(lib.shim_remote_max_streams(self.sh))

    def data_to_send(self) -> bytes:
        sh = self.sh
        rv = _shim_send(sh)
        if rv:
            raise _error(rv, "send")
        if sh.ev_len > sh.ev_delivered:
            records = _unpack(sh.ev + sh.ev_delivered * 5, (sh.ev_len - sh.ev_delivered) * 5)
            it = iter(records)
            self.late += [(kind, sid, None, extra) for kind, sid, _, _, extra in zip(it, it, it, it, it)]
            sh.ev_delivered = sh.ev_len
        n = sh.out_len
        return _buffer(sh.out, n)[:] if n else b""

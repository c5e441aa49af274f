"""What an HTTP/2 codec (codec.py: nghttp2 or the pure-Python h2) tells the sidecar, the same for both.

An event is a tuple `(kind, stream id, payload, extra)`:
  HEADERS   payload: the fields (a request, or a response head, 1xx included); extra: 1 if it ended the stream
  DATA      payload: the bytes; extra: the flow-controlled length (ack it once consumed)
  END       END_STREAM after DATA
  TRAILERS  payload: the fields (they end the stream)
  WINDOW    the peer opened a window (stream 0: the connection's)
  SETTINGS  the peer's SETTINGS (its max concurrent streams or initial window may have changed)
  RESET     the stream ended with an error (reset by the peer, or by the codec); extra: the error code
  GOAWAY    stream id: the last one the peer processes; extra: the error code
"""

from __future__ import annotations

from typing import Any

HEADERS, DATA, END, TRAILERS, WINDOW, SETTINGS, RESET, GOAWAY = range(1, 9)
Headers = list[tuple[bytes, bytes]]
Event = tuple[int, int, Any, int]

NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR = 0, 1, 2
REFUSED_STREAM, CANCEL = 7, 8
ERROR_NAMES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
               4: "SETTINGS_TIMEOUT", 5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM",
               8: "CANCEL", 9: "COMPRESSION_ERROR", 10: "CONNECT_ERROR", 11: "ENHANCE_YOUR_CALM",
               12: "INADEQUATE_SECURITY", 13: "HTTP_1_1_REQUIRED"}  # fmt: skip


class CodecError(Exception):
    """The codec refused a call or the peer's bytes; `error_code` is the HTTP/2 error to send, if any."""

    def __init__(self, message: str, error_code: int = PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.error_code = error_code

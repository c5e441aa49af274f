"""Write coalescing shared by both ends of the HTTP/2 codec (the client's `H2Server`, the endpoint's
`H2Upstream`): frames h2 queues during one loop iteration go out in one transport write."""

from __future__ import annotations

import asyncio
from typing import Any

from .events import CodecError


class CoalescingWriter(asyncio.Protocol):
    """An h2 connection's protocol: `flush()` sends what h2 queued at the end of this loop iteration (many
    streams' frames in one write), `flush_now()` sends it at once. `write_paused` follows the transport's
    buffer; `writable()` is called when it drained."""

    codec: Any
    transport: Any
    write_paused = False
    _flush_handle: asyncio.Handle | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self.writable()

    def writable(self) -> None:
        """The transport takes writes again: let the paused streams go on."""

    def flush(self) -> None:
        if self._flush_handle is None and self.transport is not None:
            loop = self._loop
            if loop is None:  # (once: asyncio.get_running_loop() costs a getpid() system call on Python 3.11)
                loop = self._loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_soon(self.flush_now)

    def flush_now(self) -> None:
        self._flush_handle = None
        try:
            data = self.codec.data_to_send()
        except CodecError:  # (nghttp2 out of memory, or a broken session: nothing more to say)
            if self.transport is not None:
                self.transport.abort()
            return
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
        if self.codec.late:
            late, self.codec.late = self.codec.late, []
            self.late_events(late)

    def late_events(self, events: list[Any]) -> None:
        """Events the codec found while sending (nghttp2: requests it dropped after the peer's GOAWAY)."""

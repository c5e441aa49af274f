"""The API's listening sockets, bounded as the Kubernetes API server and nginx bound theirs: request heads of
at most 8 KiB a line and 128 fields (431 beyond), a head must arrive within the idle timeout, and at most
`limit` connections per listener. At the cap, the oldest connection that is idle (no request in progress:
a slow client still sending its head, or a kept-alive one) makes room for the new one; when every
connection is busy the new one is closed at once. So slow clients cannot hold the API, and the fds stay
bounded."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler

MAX_LINE = 8190  # the request line and each header line (nginx's large_client_header_buffers: 8k)
MAX_FIELD = 8190
MAX_HEADERS = 128
IDLE_SECONDS = 30.0  # a connection with no request in progress (also: the time a head may take to arrive)
MAX_CONNECTIONS = 512  # per listener
BACKLOG = 128
HANDLER_ARGS: dict[str, Any] = {"max_line_size": MAX_LINE, "max_field_size": MAX_FIELD,
                                "max_headers": MAX_HEADERS, "keepalive_timeout": IDLE_SECONDS}


def head_too_large(exc: BaseException | None) -> bool:
    return isinstance(exc, LineTooLong) or (isinstance(exc, BadHttpMessage) and "Too many headers" in str(exc))


class _Handler(RequestHandler):
    """aiohttp's connection handler, counted by its listener; an oversized head is a 431, not a 400."""

    def __init__(self, listener: Listener, manager: web.Server, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.listener = listener
        self.busy = 0  # requests in progress (the listener's middleware counts them)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.listener.opened(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.listener.closed(self)
        super().connection_lost(exc)

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if head_too_large(exc):
            status, message = 431, "431 Request Header Fields Too Large"
        return super().handle_error(request, status, exc, message)


class Listener:
    """One listening socket of an aiohttp runner, with the connection cap."""

    def __init__(self, runner: web.AppRunner, *, limit: int = MAX_CONNECTIONS) -> None:
        self.runner = runner
        self.limit = limit
        self.refused = 0
        self.evicted = 0
        self._open: dict[_Handler, None] = {}  # in accept order
        self._server: asyncio.AbstractServer | None = None

    def _factory(self) -> _Handler:
        assert self.runner.server is not None
        return _Handler(self, self.runner.server, loop=asyncio.get_running_loop(), **HANDLER_ARGS)

    async def start_tcp(self, host: str, port: int) -> None:
        self._server = await asyncio.get_running_loop().create_server(
            self._factory, host, port, reuse_address=True, backlog=BACKLOG)

    async def start_socket(self, sock: socket.socket) -> None:
        self._server = await asyncio.get_running_loop().create_server(self._factory, sock=sock, backlog=BACKLOG)

    @property
    def connections(self) -> int:
        return len(self._open)

    def opened(self, handler: _Handler) -> None:
        if len(self._open) >= self.limit:
            idle = next((h for h in self._open if not h.busy), None)
            if idle is None:
                self.refused += 1
                handler.force_close()
                return
            self.evicted += 1
            self._open.pop(idle, None)
            idle.force_close()
        self._open[handler] = None

    def closed(self, handler: _Handler) -> None:
        self._open.pop(handler, None)

    def close(self) -> None:
        """Stops accepting (the runner's cleanup closes the connections)."""
        if self._server is not None:
            self._server.close()


@web.middleware
async def count_busy(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
    """Marks the connection busy while a request is handled (the outermost middleware)."""
    protocol = request.protocol
    if isinstance(protocol, _Handler):
        protocol.busy += 1
        try:
            return await handler(request)
        finally:
            protocol.busy -= 1
    return await handler(request)

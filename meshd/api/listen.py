"""The API's listening sockets, bounded as the Kubernetes API server and nginx bound theirs: request heads of
at most 8 KiB a line and 128 fields (431 beyond), a head must arrive within the idle timeout, and at most
`limit` connections per listener. At the cap, the oldest connection that is idle (no request in progress:
a slow client still sending its head, or a kept-alive one) makes room for the new one; when every
connection is busy the new one is closed at once. So slow clients cannot hold the API, and the fds stay
bounded. Given a TLS context, a TCP listener serves HTTPS and plain HTTP on its one port (meshd/api/sniff.py);
a connection waiting for its first byte or its handshake counts as an idle one."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler

from meshd.api.sniff import first_byte

log = logging.getLogger(__name__)

MAX_LINE = 8190  # the request line and each header line (nginx's large_client_header_buffers: 8k)
MAX_FIELD = 8190
MAX_HEADERS = 128
IDLE_SECONDS = 30.0  # a connection with no request in progress (also: the time a head may take to arrive)
MAX_CONNECTIONS = 512  # per listener
BACKLOG = 128
ACCEPT_RETRY_SECONDS = 1.0  # out of fds (or memory): stop accepting this long, as asyncio's own servers do
_SHORT_OF = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_TRANSIENT = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EINTR, errno.EAGAIN})
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


class _Pending:
    """An accepted connection waiting for its first byte or its TLS handshake: idle, so the cap may close it."""

    busy = 0

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.task: asyncio.Task[None] | None = None

    def force_close(self) -> None:
        if self.task is not None:
            self.task.cancel()  # its hand-over closes the socket
        else:
            self.sock.close()


class Listener:
    """One listening socket of an aiohttp runner, with the connection cap."""

    def __init__(self, runner: web.AppRunner, *, limit: int = MAX_CONNECTIONS, tls: ssl.SSLContext | None = None,
                 head_timeout: float = IDLE_SECONDS) -> None:
        self.runner = runner
        self.limit = limit
        self.tls = tls
        self.head_timeout = head_timeout
        self.refused = 0
        self.evicted = 0
        self._open: dict[_Handler | _Pending, None] = {}  # in accept order
        self._server: asyncio.AbstractServer | None = None
        self._accepting: asyncio.Task[None] | None = None

    def _factory(self) -> _Handler:
        assert self.runner.server is not None
        return _Handler(self, self.runner.server, loop=asyncio.get_running_loop(), **HANDLER_ARGS)

    async def start_tcp(self, host: str, port: int) -> None:
        """Plain HTTP, or with `tls` HTTPS and plain HTTP on the one port."""
        loop = asyncio.get_running_loop()
        if self.tls is None:
            self._server = await loop.create_server(self._factory, host, port, reuse_address=True, backlog=BACKLOG)
            return
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family, backlog=BACKLOG)
        sock.setblocking(False)
        self._accepting = loop.create_task(self._accept(sock))
        self._accepting.add_done_callback(_log_death)

    async def _accept(self, sock: socket.socket) -> None:
        """Accepts connections and hands each over once its first byte says what it speaks."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    conn, _ = await loop.sock_accept(sock)
                except OSError as exc:
                    if exc.errno in _SHORT_OF:
                        log.warning("API: cannot accept a connection (%s); retrying in %.0fs", exc,
                                    ACCEPT_RETRY_SECONDS)
                        await asyncio.sleep(ACCEPT_RETRY_SECONDS)
                        continue
                    if exc.errno in _TRANSIENT:  # that client went away before it was accepted
                        continue
                    raise
                conn.setblocking(False)
                pending = _Pending(conn)
                self.opened(pending)
                if pending in self._open:
                    pending.task = loop.create_task(self._hand_over(pending))
        finally:
            sock.close()  # here, once the loop no longer watches it (close() cancels this task)

    async def _hand_over(self, pending: _Pending) -> None:
        """Waits for the first byte (at most the head timeout), then gives the socket to aiohttp's handler,
        over TLS if it opens a handshake (which must end within the head timeout too)."""
        conn, handed = pending.sock, False
        try:
            kind = await first_byte(conn, timeout=self.head_timeout)
            if kind != "closed":
                tls = kind == "tls"
                await asyncio.get_running_loop().connect_accepted_socket(
                    self._factory, conn, ssl=self.tls if tls else None,
                    ssl_handshake_timeout=self.head_timeout if tls else None)
                handed = True
        except OSError as exc:  # a silent client (TimeoutError) or a failed handshake (ssl.SSLError)
            log.debug("API connection closed before its first request: %r", exc)
        finally:
            self.closed(pending)
            if not handed:
                conn.close()

    async def start_socket(self, sock: socket.socket) -> None:
        self._server = await asyncio.get_running_loop().create_server(self._factory, sock=sock, backlog=BACKLOG)

    @property
    def connections(self) -> int:
        return len(self._open)

    def opened(self, handler: _Handler | _Pending) -> None:
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

    def closed(self, handler: _Handler | _Pending) -> None:
        self._open.pop(handler, None)

    def close(self) -> None:
        """Stops accepting and closes the connections not yet handed over (the runner's cleanup closes the rest)."""
        if self._server is not None:
            self._server.close()
        if self._accepting is not None:
            self._accepting.cancel()  # and then closes the listening socket
        for connection in list(self._open):
            if isinstance(connection, _Pending):
                connection.force_close()


def _log_death(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the API stopped accepting connections", exc_info=task.exception())


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

"""Accepting connections with back-pressure: a cap per listening socket, and fd exhaustion pauses accepting.

At the cap (or when accept() fails with EMFILE/ENFILE/ENOBUFS/ENOMEM) the socket is taken off the loop, so new
connections wait in the kernel's backlog instead of being accepted and dropped; accepting resumes when a
connection closes (below the cap) or, after exhaustion, a second later. Exhaustion is logged as what it is.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

EXHAUSTION = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
RETRY_AFTER = 1.0  # seconds before accepting again after fd exhaustion (asyncio's ACCEPT_RETRY_DELAY)
BATCH = 64  # connections accepted per readable event at most
HANDSHAKE_TIMEOUT = 10.0  # seconds a TLS client has to finish its handshake


def may_accept(*, active: int, pending: int, limit: int) -> bool:
    """Below the cap (connections open plus those being set up)?"""
    return active + pending < limit


class Acceptor:
    """Accepts on `sock` (listening, non-blocking) and hands each connection to `factory()`'s protocol."""

    def __init__(
        self,
        sock: socket.socket,
        factory: Callable[[], asyncio.BaseProtocol],
        *,
        limit: int,
        active: Callable[[], int],
        loop: asyncio.AbstractEventLoop,
        ssl: Any = None,
    ) -> None:
        self.sock = sock
        self.ssl = ssl  # an ssl.SSLContext: each connection's TLS handshake first (bounded in time)
        self.factory = factory
        self.limit = limit
        self.active = active
        self.loop = loop
        self.pending = 0  # accepted, protocol not yet connected
        self.reading = False
        self.closed = False
        self.paused_at_cap = 0  # times accepting paused at the cap
        self.exhausted = 0  # times accept() failed for want of fds or memory
        self._retry: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._resume()

    def _pause(self) -> None:
        if self.reading:
            self.reading = False
            self.loop.remove_reader(self.sock.fileno())

    def _resume(self) -> None:
        if not self.reading and not self.closed:
            self.reading = True
            self.loop.add_reader(self.sock.fileno(), self._on_readable)

    def connection_closed(self) -> None:
        """A connection ended: accept again if the cap paused accepting (not while fds are exhausted)."""
        if (
            not self.reading
            and self._retry is None
            and may_accept(active=self.active(), pending=self.pending, limit=self.limit)
        ):
            self._resume()

    def _after_exhaustion(self) -> None:
        self._retry = None
        self._resume()

    def _on_readable(self) -> None:
        for _ in range(BATCH):
            if not may_accept(active=self.active(), pending=self.pending, limit=self.limit):
                self.paused_at_cap += 1
                if self.paused_at_cap & (self.paused_at_cap - 1) == 0:  # 1st, 2nd, 4th... time: no flood
                    log.warning(
                        "%s: %d connections, the cap: not accepting until one closes (%d times)",
                        self.name,
                        self.limit,
                        self.paused_at_cap,
                    )
                self._pause()
                return
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in EXHAUSTION:
                    self.exhausted += 1
                    log.warning("%s: cannot accept (%s): pausing %gs", self.name, e.strerror, RETRY_AFTER)
                    self._pause()
                    if self._retry is None:
                        self._retry = self.loop.call_later(RETRY_AFTER, self._after_exhaustion)
                    return
                continue  # the peer gave up before we took it (ECONNABORTED, EPROTO...): next one
            conn.setblocking(False)
            try:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            self.pending += 1
            task = self.loop.create_task(self._connect(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            if self.ssl is None:
                await self.loop.connect_accepted_socket(self.factory, sock=conn)
            else:
                await self.loop.connect_accepted_socket(self.factory, sock=conn, ssl=self.ssl,
                                                        ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as error:  # TLS garbage: this one only
            log.debug("%s: connection dropped during setup: %s", self.name, error)
            conn.close()
        finally:
            self.pending -= 1

    @property
    def name(self) -> str:
        try:
            host, port = self.sock.getsockname()[:2]
        except OSError:
            return "listener"
        return f"{host}:{port}"

    def close(self) -> None:
        """Stop accepting and close the listening socket (connections already accepted stay)."""
        if self.closed:
            return
        self._pause()
        self.closed = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        for task in list(self._tasks):
            task.cancel()
        self.sock.close()

"""TLS and plain HTTP on one port: what an accepted connection speaks, from its first byte (0x16 opens a TLS
handshake record; no HTTP request starts with it). The byte is peeked (MSG_PEEK), never consumed, before any
transport exists, so the TLS handshake or the HTTP parser that takes the socket next reads it all itself.

`first_byte_kind` is the decision, pure; `first_byte` waits for the byte, bounded by the head timeout."""

from __future__ import annotations

import asyncio
import socket
from typing import Literal

TLS_HANDSHAKE = 0x16  # the content type of a TLS handshake record (RFC 8446 5.1)
Kind = Literal["tls", "http", "closed"]


def first_byte_kind(first: bytes) -> Kind:
    """What a connection speaks, from its first byte (b"": it closed before sending one)."""
    if not first:
        return "closed"
    return "tls" if first[0] == TLS_HANDSHAKE else "http"


async def first_byte(sock: socket.socket, *, timeout: float) -> Kind:
    """Waits for `sock`'s first byte (non-blocking socket, no transport on it yet) and says what it speaks,
    leaving the byte in the socket. TimeoutError if nothing comes within `timeout`; a reset is "closed"."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        while True:
            try:
                return first_byte_kind(sock.recv(1, socket.MSG_PEEK))
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                return "closed"
            readable: asyncio.Future[None] = loop.create_future()
            loop.add_reader(sock.fileno(), _wake, readable)
            try:
                await readable
            finally:
                loop.remove_reader(sock.fileno())


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)

"""sidecar/unread.py with real kernel sockets, under asyncio and uvloop: an endpoint answers a request early
and closes with the request's body unread (a reset); the proxy's next write meets the reset before its loop
read the answer, and the answer is still recovered while the transport is being closed."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import pytest
import uvloop

from sidecar.unread import unread_bytes

ANSWER = b"HTTP/1.0 413 Too Large\r\n\r\nno\n"


def early_answering_server() -> int:
    """A server thread: per connection, read the head, answer, close with the rest unread (the kernel resets)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            for _ in range(3):
                conn, _ = listener.accept()
                with conn:
                    head = b""
                    while b"\r\n\r\n" not in head:
                        head += conn.recv(100)
                    conn.sendall(ANSWER)

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


class Uploader(asyncio.Protocol):
    def __init__(self) -> None:
        self.read = b""
        self.lost: asyncio.Future[tuple[Exception | None, bytes]] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.read += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result((exc, unread_bytes(self.transport)))


async def upload_while_busy(port: int) -> tuple[Exception | None, bytes, bytes]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_connection(Uploader, "127.0.0.1", port)
    transport.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9000000\r\n\r\n" + b"q" * 1000)
    time.sleep(0.1)  # a busy loop: the answer and the reset arrive before it polls again
    for _ in range(3):
        transport.write(b"q" * 100_000)
        time.sleep(0.02)
    exc, rest = await asyncio.wait_for(proto.lost, 10)
    return exc, proto.read, rest


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_an_early_answer_is_recovered_after_a_failed_write(run: Any) -> None:
    port = early_answering_server()
    exc, read, rest = run(upload_while_busy(port))
    assert isinstance(exc, ConnectionError)  # the write met the reset first
    assert read + rest == ANSWER


def test_nothing_is_read_from_under_tls() -> None:
    class Tls:
        def get_extra_info(self, name: str) -> Any:
            return object() if name == "ssl_object" else None

    assert unread_bytes(Tls()) == b""

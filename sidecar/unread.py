"""Bytes an endpoint sent before it reset the connection, which the loop never read.

A server that answers early and closes with the request unread (a refused upload: http.server's 501, a 413)
resets the connection. If the proxy's next write meets the reset before its loop has read the answer, the
loop closes the transport at once and the answer, still queued in the kernel, would be lost: nginx and
HAProxy pass it on. The socket is still open while `connection_lost` runs, in asyncio and in uvloop."""

from __future__ import annotations

import os
import socket
from typing import Any


def unread_bytes(transport: Any) -> bytes:
    """What the kernel still holds for a transport being closed after a failed write (a reset connection's
    queued bytes stay readable); empty if there are none or the socket is gone already. Never for TLS: the
    kernel holds ciphertext there."""
    if transport.get_extra_info("ssl_object") is not None:
        return b""
    sock = transport.get_extra_info("socket")
    chunks: list[bytes] = []
    try:
        with socket.socket(fileno=os.dup(sock.fileno())) as dup:
            dup.setblocking(False)
            while data := dup.recv(65536):
                chunks.append(data)
    except (OSError, AttributeError):
        pass  # (ECONNRESET after the queued bytes, or EAGAIN, ends the reading)
    return b"".join(chunks)

"""TCP probe: success when a connection to host:port opens within the timeout (kubelet's `pkg/probe/tcp`).

`probe_tcp(host=, port=, timeout=)` never raises: a refused connection or a timeout is a `failure` whose
message reads like the kubelet's ("dial tcp 10.213.0.5:8080: connect: connection refused").
"""

from __future__ import annotations

import asyncio
import os
import socket
import time

from meshd.probe.result import ProbeResult


def host_port(host: str, port: int) -> str:
    """`host:port`, with brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def os_error_text(exc: BaseException) -> str:
    """Go-style lower-case text of a socket error ("connection refused", "no route to host")."""
    if isinstance(exc, socket.gaierror):
        return "no such host"
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno).lower()  # not exc.strerror: asyncio puts "Connect call failed" there
    return str(exc) or type(exc).__name__


def dial_error(host: str, port: int, exc: BaseException) -> str:
    """The kubelet's message for a failed connect: `dial tcp H:P: connect: connection refused`."""
    if isinstance(exc, TimeoutError):
        return f"dial tcp {host_port(host, port)}: i/o timeout"
    if isinstance(exc, socket.gaierror):
        return f"dial tcp: lookup {host}: no such host"
    return f"dial tcp {host_port(host, port)}: connect: {os_error_text(exc)}"


async def probe_tcp(*, host: str, port: int, timeout: float) -> ProbeResult:
    """Opens and at once closes a TCP connection to host:port."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        return ProbeResult("failure", dial_error(host, port, exc), time.perf_counter() - started)
    # A plain close (FIN). Not SO_LINGER as the kubelet does: a lingering close() can block the event loop.
    writer.transport.abort()
    return ProbeResult("success", "", time.perf_counter() - started)

"""HTTP probe: one GET over raw asyncio streams; a status in 200..399 is success (kubelet's `pkg/probe/http`).

`probe_http(host=, port=, path=, headers=, scheme=, timeout=)` never raises. It sends one request
(`Connection: close`, `User-Agent: meshd-probe/0.1`), decides on the status line, drains at most
`MAX_DRAIN` bytes so the server is not answered with a reset, and closes. Redirects are not followed: 3xx
is success, as in the kubelet. A refused connect, a timeout, a connection accepted and then closed or reset
without a response (what docker-proxy does when nothing listens behind it), a malformed status line or any
other status is a `failure`; an invalid path or header (CR/LF injection) is an `error`. HTTPS does not
verify the certificate (the kubelet does not either).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterable
from typing import Literal

from meshd.probe.result import ProbeResult, truncate
from meshd.probe.tcp import dial_error, host_port, os_error_text

USER_AGENT = "meshd-probe/0.1"
MAX_DRAIN = 10 * 1024  # response bytes read after the status line, at most
MAX_STATUS_LINE = 8 * 1024

_tls: ssl.SSLContext | None = None


def _tls_context() -> ssl.SSLContext:
    global _tls
    if _tls is None:  # building a context costs milliseconds: once per process
        _tls = ssl.create_default_context()
        _tls.check_hostname = False
        _tls.verify_mode = ssl.CERT_NONE
    return _tls


def build_request(*, host: str, port: int, path: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """The request bytes; user headers replace the defaults of the same name (Host, User-Agent, Accept)."""
    if not path.startswith("/"):
        path = "/" + path
    fields = {
        "host": ("Host", host_port(host, port)),
        "user-agent": ("User-Agent", USER_AGENT),
        "accept": ("Accept", "*/*"),
    }
    for name, value in headers:
        fields[name.lower()] = (name, value)
    fields["connection"] = ("Connection", "close")
    lines = [f"GET {path} HTTP/1.1"] + [f"{name}: {value}" for name, value in fields.values()]
    text = "\r\n".join(lines) + "\r\n\r\n"
    if any(c in path for c in " \r\n") or any(c in f"{n}{v}" for n, v in fields.values() for c in "\r\n"):
        raise ValueError("probe path or header contains a space, CR or LF")
    return text.encode("latin-1")


def parse_status_line(line: bytes) -> int | None:
    """The status code of `HTTP/1.x NNN reason`, or None when the line is not one."""
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not (len(parts[1]) == 3 and parts[1].isdigit()):
        return None
    return int(parts[1])


async def _drain(reader: asyncio.StreamReader) -> None:
    """Reads the rest of the response up to MAX_DRAIN bytes, stopping early at Content-Length or EOF."""
    head = await reader.readuntil(b"\r\n\r\n")
    length: int | None = None
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            length = int(value.strip())
    budget = MAX_DRAIN - len(head)
    if length is not None:
        if 0 < length <= budget:
            await reader.readexactly(length)
        return
    while budget > 0 and (chunk := await reader.read(budget)):  # until EOF (we asked for Connection: close)
        budget -= len(chunk)


async def probe_http(
    *,
    host: str,
    port: int,
    path: str = "/",
    headers: Iterable[tuple[str, str]] = (),
    scheme: Literal["HTTP", "HTTPS", "http", "https"] = "HTTP",
    timeout: float,
) -> ProbeResult:
    """GETs scheme://host:port/path once within `timeout` seconds and judges the status code."""
    started = time.perf_counter()
    secure = scheme.upper() == "HTTPS"
    url = f'Get "{scheme.lower()}://{host_port(host, port)}{path if path.startswith("/") else "/" + path}"'

    def done(outcome: Literal["success", "failure", "error"], message: str) -> ProbeResult:
        return ProbeResult(outcome, truncate(message), time.perf_counter() - started)

    try:
        request = build_request(host=host, port=port, path=path, headers=headers)
    except (ValueError, UnicodeEncodeError) as exc:
        return done("error", f"{url}: {exc}")
    deadline = asyncio.get_running_loop().time() + timeout
    writer: asyncio.StreamWriter | None = None
    try:
        try:
            async with asyncio.timeout_at(deadline):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=_tls_context() if secure else None, limit=MAX_STATUS_LINE
                )
        except (OSError, TimeoutError) as exc:
            return done("failure", f"{url}: {dial_error(host, port, exc)}")
        try:
            async with asyncio.timeout_at(deadline):
                writer.write(request)
                line = await reader.readuntil(b"\n")
        except TimeoutError:
            return done(
                "failure",
                f"{url}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            )
        except asyncio.IncompleteReadError as exc:
            return done("failure", f"{url}: {'EOF' if not exc.partial else 'unexpected EOF'}")
        except asyncio.LimitOverrunError:
            return done("failure", f"{url}: malformed HTTP response (status line too long)")
        except (OSError, ssl.SSLError) as exc:
            return done("failure", f"{url}: read tcp {host_port(host, port)}: read: {os_error_text(exc)}")
        status = parse_status_line(line)
        if status is None:
            return done("failure", f"{url}: malformed HTTP response {line[:64]!r}")
        try:
            async with asyncio.timeout_at(deadline):
                await _drain(reader)
        except (TimeoutError, OSError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the status decides; the drain is a courtesy to the server
        if 200 <= status < 400:
            return done("success", f"HTTP probe succeeded with statuscode: {status}")
        return done("failure", f"HTTP probe failed with statuscode: {status}")
    finally:
        if writer is not None:
            writer.transport.abort()  # no wait for a TLS close_notify: nothing here may outlive the probe

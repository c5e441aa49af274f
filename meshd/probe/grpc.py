"""gRPC probe: `grpc.health.v1.Health/Check` over h2c (kubelet's `pkg/probe/grpc`); SERVING is success.

`probe_grpc(host=, port=, service=, timeout=)` never raises. One unary call on a fresh plaintext HTTP/2
connection (the kubelet's probe does not do TLS either): HEADERS POST /grpc.health.v1.Health/Check, one
length-prefixed HealthCheckRequest (field 1: `service`), then the response message's field 1 (the status
enum, SERVING = 1) and the grpc-status trailer. Messages read like the kubelet's.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import unquote

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, ResponseReceived, StreamEnded, StreamReset, TrailersReceived
from h2.exceptions import H2Error

from meshd.model.protowire import read_varint
from meshd.probe.result import ProbeResult, truncate
from meshd.probe.tcp import dial_error, host_port

PATH = b"/grpc.health.v1.Health/Check"
USER_AGENT = b"meshd-probe/0.1"
STATUS_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
GRPC_CODES = {1: "Canceled", 2: "Unknown", 4: "DeadlineExceeded", 5: "NotFound", 12: "Unimplemented",
              13: "Internal", 14: "Unavailable", 16: "Unauthenticated"}  # fmt: skip
MAX_RESPONSE = 64 * 1024


def encode_request(service: str) -> bytes:
    """A gRPC message (flag, 4-byte length, protobuf) holding HealthCheckRequest{service}."""
    raw = service.encode()
    body = (b"\x0a" + _varint(len(raw)) + raw) if raw else b""
    return b"\x00" + len(body).to_bytes(4, "big") + body


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_response(data: bytes) -> int:
    """HealthCheckResponse.status from one length-prefixed gRPC message (0, UNKNOWN, if absent)."""
    if len(data) < 5:
        raise ValueError("short gRPC message")
    if data[0] != 0:
        raise ValueError("compressed gRPC message")
    length = int.from_bytes(data[1:5], "big")
    body = data[5 : 5 + length]
    if len(body) < length:
        raise ValueError("short gRPC message")
    i, status = 0, 0
    while i < len(body):
        key, i = read_varint(body, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = read_varint(body, i)
            if field == 1:
                status = value
        elif wire == 2:
            n, i = read_varint(body, i)
            i += n
        elif wire == 5:
            i += 4
        elif wire == 1:
            i += 8
        else:
            raise ValueError(f"unknown protobuf wire type {wire}")
    return status


def verdict(*, grpc_status: int | None, grpc_message: str, body: bytes) -> tuple[bool, str]:
    """(success, the kubelet's message) for a finished call."""
    if grpc_status is None:
        return False, "error: health rpc probe failed: no grpc-status in the response"
    if grpc_status != 0:
        code = GRPC_CODES.get(grpc_status, f"Code({grpc_status})")
        return False, f"error: health rpc probe failed: rpc error: code = {code} desc = {grpc_message}"
    try:
        status = decode_response(body)
    except ValueError as e:
        return False, f"error: health rpc probe failed: {e}"
    if status == 1:
        return True, ""
    return False, f'service unhealthy (responded with "{STATUS_NAMES.get(status, str(status))}")'


class _Call(asyncio.Protocol):
    def __init__(self, authority: bytes, service: str) -> None:
        self.h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.authority = authority
        self.service = service
        self.body = bytearray()
        self.headers: list[tuple[bytes, bytes]] = []
        self.done: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        h2 = self.h2
        h2.initiate_connection()
        h2.send_headers(1, [
            (b":method", b"POST"), (b":scheme", b"http"), (b":path", PATH), (b":authority", self.authority),
            (b"content-type", b"application/grpc"), (b"te", b"trailers"), (b"user-agent", USER_AGENT),
        ])  # fmt: skip
        h2.send_data(1, encode_request(self.service), end_stream=True)
        transport.write(h2.data_to_send())

    def data_received(self, data: bytes) -> None:
        try:
            events: list[Any] = self.h2.receive_data(data)
        except H2Error as e:
            self._end(f"error: health rpc probe failed: protocol error: {e}")
            return
        for ev in events:
            if isinstance(ev, ResponseReceived | TrailersReceived):
                self.headers.extend(ev.headers)
            elif isinstance(ev, DataReceived):
                self.body += ev.data
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if len(self.body) > MAX_RESPONSE:
                    self._end("error: health rpc probe failed: response too large")
            elif isinstance(ev, StreamEnded):
                self._end(None)
            elif isinstance(ev, StreamReset):
                self._end(f"error: health rpc probe failed: stream reset ({ev.error_code!r})")
        out = self.h2.data_to_send()
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._end("error: health rpc probe failed: connection closed before the response")

    def _end(self, error: str | None) -> None:
        if not self.done.done():
            self.done.set_result(error)


async def probe_grpc(*, host: str, port: int, service: str = "", timeout: float) -> ProbeResult:
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    transport = None
    try:
        async with asyncio.timeout(timeout):
            try:
                transport, call = await loop.create_connection(
                    lambda: _Call(host_port(host, port).encode(), service), host, port
                )
            except OSError as e:
                message = f"timeout: failed to connect service {host_port(host, port)!r}: {dial_error(host, port, e)}"
                return ProbeResult("failure", message, time.perf_counter() - started)
            error = await call.done
    except TimeoutError:
        message = f"timeout: health rpc did not complete within {timeout:g}s"
        return ProbeResult("failure", message, time.perf_counter() - started)
    finally:
        if transport is not None:
            transport.abort()
    if error is not None:
        return ProbeResult("failure", truncate(error), time.perf_counter() - started)
    headers = dict(call.headers)
    raw_status = headers.get(b"grpc-status")
    try:
        grpc_status = int(raw_status) if raw_status is not None else None
    except ValueError:
        grpc_status = 2
    ok, message = verdict(
        grpc_status=grpc_status, grpc_message=unquote(headers.get(b"grpc-message", b"").decode(errors="replace")),
        body=bytes(call.body),
    )  # fmt: skip
    return ProbeResult("success" if ok else "failure", truncate(message), time.perf_counter() - started)

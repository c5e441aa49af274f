"""HTTP, TCP and exec probes against real sockets and real processes."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Iterator

import pytest

from meshd.driver.base import ExecResult
from meshd.probe.exec import probe_exec, run_subprocess
from meshd.probe.grpc import probe_grpc
from meshd.probe.http import MAX_DRAIN, probe_http
from meshd.probe.tcp import probe_tcp


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A tiny HTTP server whose behaviour the path picks."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
        return
    path = head.split(b" ")[1].decode()
    headers = head.decode().lower()

    def reply(status: str, body: bytes = b"", extra: str = "") -> None:
        writer.write(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body)

    if path == "/ok":
        reply("200 OK", b"fine")
    elif path == "/fail":
        reply("500 Internal Server Error", b"broken")
    elif path == "/redirect":
        reply("302 Found", extra="Location: /elsewhere\r\n")
    elif path == "/notfound":
        reply("404 Not Found")
    elif path == "/slow":
        await asyncio.sleep(30)
    elif path == "/reset":  # read the request, then RST without answering
        writer.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        writer.transport.abort()
        return
    elif path == "/close":  # read the request, then FIN without answering
        pass
    elif path == "/garbage":
        writer.write(b"SSH-2.0-OpenSSH\r\n")
    elif path == "/big":  # no Content-Length, body far larger than the drain budget
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * (MAX_DRAIN * 50))
    elif path == "/headers":
        ok = (
            "user-agent: meshd-probe/0.1" in headers
            and "x-probe: yes" in headers
            and "connection: close" in headers
        )
        reply("200 OK" if ok else "400 Bad Request")
    elif path == "/host":
        reply("200 OK" if "host: example.test\r\n" in headers else "400 Bad Request")
    try:
        await writer.drain()
    except ConnectionError:
        pass
    writer.close()


@pytest.fixture
async def server() -> AsyncIterator[int]:
    tasks: set[asyncio.Task[None]] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handle(reader, writer)
        except asyncio.CancelledError:
            writer.transport.abort()
        finally:
            tasks.discard(task)

    srv = await asyncio.start_server(tracked, "127.0.0.1", 0)
    yield srv.sockets[0].getsockname()[1]
    srv.close()
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await srv.wait_closed()


@pytest.fixture
def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
async def reset_on_accept() -> AsyncIterator[int]:
    """Accepts and at once resets, before any byte is read (docker-proxy with nothing behind it)."""

    async def rst(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        writer.transport.abort()

    srv = await asyncio.start_server(rst, "127.0.0.1", 0)
    yield srv.sockets[0].getsockname()[1]
    srv.close()


async def http(port: int, path: str, timeout: float = 2.0, headers: tuple[tuple[str, str], ...] = ()):  # type: ignore[no-untyped-def]
    return await probe_http(
        host="127.0.0.1", port=port, path=path, headers=headers, scheme="HTTP", timeout=timeout
    )


@pytest.mark.parametrize(
    "path,outcome,message",
    [
        ("/ok", "success", "HTTP probe succeeded with statuscode: 200"),
        ("/redirect", "success", "HTTP probe succeeded with statuscode: 302"),
        ("/fail", "failure", "HTTP probe failed with statuscode: 500"),
        ("/notfound", "failure", "HTTP probe failed with statuscode: 404"),
        ("/big", "success", "HTTP probe succeeded with statuscode: 200"),
    ],
)
async def test_http_status_decides(server: int, path: str, outcome: str, message: str) -> None:
    result = await http(server, path)
    assert (result.outcome, result.message) == (outcome, message)
    assert result.duration > 0


@pytest.mark.parametrize("path", ["/reset", "/close", "/garbage"])
async def test_http_connection_without_a_response_is_a_failure(server: int, path: str) -> None:
    result = await http(server, path)
    assert result.outcome == "failure", result
    assert result.message.startswith(f'Get "http://127.0.0.1:{server}{path}": ')


async def test_http_reset_right_after_accept_is_a_failure(reset_on_accept: int) -> None:
    result = await http(reset_on_accept, "/healthz")
    assert result.outcome == "failure", result


async def test_http_timeout_is_a_failure(server: int) -> None:
    result = await http(server, "/slow", timeout=0.2)
    assert result.outcome == "failure" and "context deadline exceeded" in result.message


async def test_http_refused_is_a_failure_with_kubelets_message(closed_port: int) -> None:
    result = await http(closed_port, "/healthz")
    assert result == type(result)(
        "failure",
        f'Get "http://127.0.0.1:{closed_port}/healthz": dial tcp 127.0.0.1:{closed_port}: connect: connection refused',
        result.duration,
    )


async def test_http_sends_user_agent_connection_close_and_custom_headers(server: int) -> None:
    assert (await http(server, "/headers", headers=(("X-Probe", "yes"),))).outcome == "success"
    assert (await http(server, "/host", headers=(("Host", "example.test"),))).outcome == "success"


async def test_http_header_injection_is_an_error(server: int) -> None:
    result = await http(server, "/ok", headers=(("X-Evil", "a\r\nInjected: 1"),))
    assert result.outcome == "error"


async def test_tcp_open_port_succeeds_and_closed_port_fails(server: int, closed_port: int) -> None:
    assert (await probe_tcp(host="127.0.0.1", port=server, timeout=1)).outcome == "success"
    result = await probe_tcp(host="127.0.0.1", port=closed_port, timeout=1)
    assert (result.outcome, result.message) == (
        "failure",
        f"dial tcp 127.0.0.1:{closed_port}: connect: connection refused",
    )


async def test_exec_with_a_fake_runner() -> None:
    async def run(command: tuple[str, ...], timeout: float) -> ExecResult:
        if command[0] == "ok":
            return ExecResult(0, b"all good\n")
        if command[0] == "bad":
            return ExecResult(2, b"x" * 5000)
        if command[0] == "hang":
            await asyncio.sleep(30)
        raise RuntimeError("container is gone")

    ok = await probe_exec(run=run, command=("ok",), timeout=1)
    assert (ok.outcome, ok.message) == ("success", "all good")
    bad = await probe_exec(run=run, command=("bad",), timeout=1)
    assert bad.outcome == "failure" and bad.message.startswith("command ['bad'] exited with 2: xxx")
    assert bad.message.endswith("(truncated)") and len(bad.message) < 1200
    hang = await probe_exec(run=run, command=("hang",), timeout=0.1)
    assert hang.outcome == "failure" and "timed out" in hang.message
    gone = await probe_exec(run=run, command=("gone",), timeout=1)
    assert gone.outcome == "error" and "container is gone" in gone.message


async def test_exec_with_real_processes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ok = await probe_exec(run=run_subprocess, command=("sh", "-c", "echo hello"), timeout=5)
    assert (ok.outcome, ok.message) == ("success", "hello")
    bad = await probe_exec(run=run_subprocess, command=("sh", "-c", "echo not ready >&2; exit 3"), timeout=5)
    assert (bad.outcome, bad.message) == (
        "failure",
        "command ['sh', '-c', 'echo not ready >&2; exit 3'] exited with 3: not ready",
    )
    missing = await probe_exec(run=run_subprocess, command=("/no/such/binary",), timeout=5)
    assert missing.outcome == "failure" and "exited with 127" in missing.message
    pidfile = tmp_path / "pid"
    slow = await probe_exec(
        run=run_subprocess, command=("sh", "-c", f"echo $$ > {pidfile}; exec sleep 30"), timeout=0.3
    )
    assert slow.outcome == "failure" and "timed out" in slow.message
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left behind
        import os

        os.kill(pid, 0)


# --- gRPC (a real grpcio server with the standard health service) ---------------------------------------
@pytest.fixture(scope="module")
def grpc_health_port() -> Iterator[int]:
    grpc = pytest.importorskip("grpc")
    health = pytest.importorskip("grpc_health.v1.health")
    from concurrent import futures

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("sick", health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(None)


@pytest.mark.parametrize(
    ("service", "outcome", "message"),
    [
        ("", "success", ""),
        ("sick", "failure", 'service unhealthy (responded with "NOT_SERVING")'),
        ("nope", "failure", "error: health rpc probe failed: rpc error: code = NotFound desc = "),
    ],
)
async def test_grpc_probe_against_grpcio_health(grpc_health_port: int, service: str, outcome: str, message: str):
    result = await probe_grpc(host="127.0.0.1", port=grpc_health_port, service=service, timeout=5)
    assert (result.outcome, result.message) == (outcome, message)


async def test_grpc_probe_refused_and_not_grpc():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = await probe_grpc(host="127.0.0.1", port=port, timeout=2)
    assert result.outcome == "failure" and "connection refused" in result.message

    async def http1(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(http1, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        result = await probe_grpc(host="127.0.0.1", port=port, timeout=2)
        assert result.outcome == "failure" and result.message.startswith("error: health rpc probe failed")
    finally:
        server.close()


async def test_grpc_probe_silent_server_times_out():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        result = await probe_grpc(host="127.0.0.1", port=port, timeout=0.3)
        assert result.outcome == "failure" and "timeout" in result.message
    finally:
        server.close()

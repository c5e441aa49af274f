"""The sidecar's HTTP/1.1 edge cases, with real sockets: fake agent + real backends + the real sidecar + curl."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "proxy"))
import backend
import fake_agent
from harness import Process, free_port, run, start_sidecar

pytestmark = pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")


@dataclass
class Mesh:
    agent: fake_agent.FakeAgent
    sidecar: Process
    port: int
    metrics: int
    backend_ports: list[int]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def mesh(tmp_path: Path):
    agent = fake_agent.FakeAgent()
    api = await agent.start()
    runners, ports = [], []
    for i in range(3):
        runner, port = await backend.start(f"b{i}")
        runners.append(runner)
        ports.append(port)
    info = fake_agent.service("web", None, 80, annotations={"meshd.io/timeout": "1s"})
    agent.set_service(info, [fake_agent.endpoint(f"b{i}", "127.0.0.1", p) for i, p in enumerate(ports)])
    port = free_port()
    sidecar, mport = await start_sidecar(
        api, tmp_path / "sidecar.log", "--listen", f"127.0.0.1:{port}", "--service", "web", listen_port=port
    )
    yield Mesh(agent, sidecar, port, mport, ports)
    code = await sidecar.stop()
    for runner in runners:
        await runner.cleanup()
    await agent.stop()
    assert code == 0, sidecar.output()
    assert "Traceback" not in sidecar.output(), sidecar.output()


async def curl(*args: str, timeout: float = 30) -> tuple[int, bytes, bytes]:
    return await run("curl", "-sS", "--max-time", "20", *args, timeout=timeout)


async def test_requests_spread_over_keepalive_connection(mesh: Mesh):
    code, out, _ = await curl(*[f"{mesh.url}/"] * 30, "-w", "connects=%{num_connects}\n")
    assert code == 0
    text = out.decode()
    counts = {f"b{i}": text.count(f"hello from b{i}") for i in range(3)}
    assert counts == {"b0": 10, "b1": 10, "b2": 10}  # round robin per request, not per connection
    assert text.count("connects=1") == 1  # curl reused one connection for all 30


@pytest.mark.parametrize("path", ["/bytes/10000000", "/chunked/10000000"])
async def test_large_response_bodies_stream(mesh: Mesh, path: str):
    code, out, _ = await curl(f"{mesh.url}{path}", "-o", "/dev/null", "-w", "%{http_code} %{size_download}")
    assert (code, out) == (0, b"200 10000000")


@pytest.mark.parametrize("chunked", [False, True])
async def test_large_request_body_streams_up_and_back(mesh: Mesh, tmp_path: Path, chunked: bool):
    data = os.urandom(10_000_000)
    (tmp_path / "big").write_bytes(data)
    extra = ["-H", "Transfer-Encoding: chunked"] if chunked else []
    code, out, err = await curl(*extra, "--data-binary", f"@{tmp_path / 'big'}", f"{mesh.url}/echo")
    assert code == 0, err
    assert hashlib.sha256(out).digest() == hashlib.sha256(data).digest()


async def test_expect_100_continue(mesh: Mesh, tmp_path: Path):
    (tmp_path / "body").write_bytes(b"z" * 2_000_000)
    code, out, err = await curl(
        "-v", "-H", "Expect: 100-continue", "--expect100-timeout", "10", "--data-binary", f"@{tmp_path / 'body'}",
        f"{mesh.url}/echo",
    )  # fmt: skip
    assert code == 0
    assert b"< HTTP/1.1 100 Continue" in err
    assert out == b"z" * 2_000_000


async def test_http_1_0_client(mesh: Mesh):
    code, out, _ = await curl("-0", "-i", f"{mesh.url}/chunked/1000")
    assert code == 0
    head, _, body = out.partition(b"\r\n\r\n")
    assert body == b"y" * 1000
    assert (
        b"Transfer-Encoding" not in head and b"Connection: close" in head
    )  # 1.0 has no chunked: close ends it


async def test_head_then_get_on_one_connection(mesh: Mesh):
    code, out, _ = await curl("-I", f"{mesh.url}/bytes/100", "--next", f"{mesh.url}/bytes/5",
                              "-w", "%{num_connects}")  # fmt: skip
    assert code == 0
    assert b"Content-Length: 100" in out and out.endswith(b"xxxxx0")


async def test_pipelined_requests_are_answered_in_order(mesh: Mesh):
    reader, writer = await asyncio.open_connection("127.0.0.1", mesh.port)
    writer.write(
        b"GET /bytes/3 HTTP/1.1\r\nHost: web\r\n\r\n"
        b"POST /echo HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /status/404 HTTP/1.1\r\nHost: web\r\n\r\n"
        b"GET /chunked/4 HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n"
    )
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    statuses = re.findall(rb"HTTP/1.1 (\d{3})", data)
    assert statuses == [b"200", b"200", b"404", b"200"]
    assert data.index(b"xxx") < data.index(b"hello") < data.index(b"status from") < data.index(b"yyyy")


async def test_hop_by_hop_removed_and_forwarding_headers_added(mesh: Mesh):
    code, out, _ = await curl(
        "-H", "Connection: keep-alive, X-Secret", "-H", "X-Secret: 1", "-H", "Proxy-Authorization: Basic eA==",
        "-H", "X-Forwarded-For: 10.0.0.9", "-H", "Keep-Alive: timeout=5", f"{mesh.url}/headers",
    )  # fmt: skip
    assert code == 0
    headers = {k.lower(): v for k, v in json.loads(out)["headers"]}
    for gone in ("x-secret", "proxy-authorization", "keep-alive", "connection"):
        assert gone not in headers, headers
    assert headers["x-forwarded-for"] == "10.0.0.9, 127.0.0.1"
    assert headers["forwarded"].startswith("for=127.0.0.1;proto=http")


async def test_upstream_closing_mid_response_closes_the_client_connection(mesh: Mesh):
    code, out, err = await curl("-i", f"{mesh.url}/cut")
    assert code == 18, (code, err)  # curl: "transfer closed with outstanding read data remaining"
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"0123456789")


async def test_upstream_closing_before_responding_is_a_502_not_a_hang(mesh: Mesh):
    code, out, _ = await curl("-i", f"{mesh.url}/drop")
    assert code == 0
    assert out.startswith(b"HTTP/1.1 502")
    assert b"closed the connection before responding" in out


async def test_no_open_proxy(mesh: Mesh):
    code, out, _ = await curl("-i", "-x", mesh.url, "http://example.com/")
    assert out.startswith(b"HTTP/1.1 403") and b"not an open proxy" in out
    code, out, _ = await curl("-p", "-x", mesh.url, "https://example.com/", "-w", "%{http_connect}")
    assert code != 0 and out.endswith(b"405")
    # an absolute URI naming the Service itself is fine
    code, out, _ = await curl("-x", mesh.url, "http://web.default.svc.cluster.local/bytes/2")
    assert (code, out) == (0, b"xx")


async def test_timeout_gives_504(mesh: Mesh):
    code, out, _ = await curl("-i", f"{mesh.url}/sleep/5")
    assert code == 0
    assert out.startswith(b"HTTP/1.1 504") and b"did not answer within 1s" in out
    code, out, _ = await curl(f"{mesh.url}/bytes/1")  # the sidecar is fine afterwards
    assert out == b"x"


async def test_websocket_is_tunnelled(mesh: Mesh):
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{mesh.url}/ws") as ws:
        for i in range(3):
            await ws.send_str(f"ping {i}")
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert re.fullmatch(rf"b\d: ping {i}", msg.data)


async def test_slow_client_gets_everything_and_the_sidecar_does_not_buffer_it(mesh: Mesh):
    """A client reading a 50 MB response slowly: back-pressure keeps the sidecar's memory flat."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", mesh.port))
    await loop.sock_sendall(sock, b"GET /bytes/50000000 HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
    rss_before = _rss_mb(mesh.sidecar.pid)
    received = 0
    peak = rss_before
    while True:
        data = await asyncio.wait_for(loop.sock_recv(sock, 65536), 20)
        if not data:
            break
        received += len(data)
        if received < 5_000_000:
            await asyncio.sleep(0.002)  # slow at first, while the backend could send everything
            peak = max(peak, _rss_mb(mesh.sidecar.pid))
    sock.close()
    assert received > 50_000_000
    assert peak - rss_before < 20, (rss_before, peak)  # far less than the 50 MB body


async def test_metrics_are_promtool_clean(mesh: Mesh):
    await curl(f"{mesh.url}/", f"{mesh.url}/status/503", f"{mesh.url}/drop")
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{mesh.metrics}/metrics") as resp,
    ):
        text = await resp.text()
    for name in (
        'meshd_sidecar_requests_total{code_class="2xx",method="GET",service="default/web"}',
        "meshd_sidecar_request_duration_seconds_bucket",
        'meshd_sidecar_upstream_attempts_total{endpoint="b0",outcome="success",service="default/web"}',
        'meshd_sidecar_retries_total{service="default/web"}',
        'meshd_sidecar_ejections_total{service="default/web"}',
        "meshd_sidecar_active_connections",
        'meshd_sidecar_endpoints{service="default/web",state="ready"} 3.0',
        'meshd_sidecar_in_flight_requests{service="default/web"}',
    ):
        assert name in text, name
    retries = float(re.search(r'meshd_sidecar_retries_total\{service="default/web"\} (\S+)', text).group(1))
    assert retries >= 2  # /status/503 and /drop were retried (idempotent GETs)
    if shutil.which("promtool"):
        code, out, err = await run("promtool", "check", "metrics", stdin=text.encode())
        assert code == 0, out + err


async def test_no_ready_endpoints_is_a_503_that_says_why(mesh: Mesh, tmp_path: Path):
    mesh.agent.set_service(
        fake_agent.service("empty", None, 80), [fake_agent.endpoint("e0", "127.0.0.1", 1, ready=False)]
    )
    port = free_port()
    api = f"http://127.0.0.1:{mesh.agent.port}"
    sidecar, _ = await start_sidecar(
        api, tmp_path / "s2.log", "--listen", f"127.0.0.1:{port}", "--service", "empty", "--fail-fast", "0.3",
        listen_port=port,
    )  # fmt: skip
    try:
        _, out, _ = await curl("-i", f"http://127.0.0.1:{port}/")
        assert out.startswith(b"HTTP/1.1 503") and out.endswith(b"no ready endpoints for default/empty\n")
        # an endpoint becoming ready while a request waits serves it
        waiting = asyncio.create_task(curl("-i", "--retry", "0", f"http://127.0.0.1:{port}/bytes/3"))
        await asyncio.sleep(0.05)
        mesh.agent.add(fake_agent.ServiceKey("default", "empty"),
                       fake_agent.endpoint("e1", "127.0.0.1", mesh.backend_ports[0]))  # fmt: skip
        _, out, _ = await waiting
        assert out.startswith((b"HTTP/1.1 200", b"HTTP/1.1 503"))  # raced the 0.3 s wait
        _, out, _ = await curl(f"http://127.0.0.1:{port}/bytes/3")
        assert out == b"xxx"
    finally:
        await sidecar.stop()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def test_repeated_requests_on_one_connection_behave_as_the_first(mesh: Mesh):
    # the same request again on a keep-alive connection takes the fast paths: the same headers reach the
    # endpoints, balanced per request, and 5xx are still retried and answered
    hop = ["-H", "Connection: keep-alive, X-Secret", "-H", "X-Secret: 1", "-H", "X-Forwarded-For: 10.0.0.9"]
    code, out, _ = await curl(*hop, *[f"{mesh.url}/headers"] * 6, "-w", "\n%{http_code} %{num_connects}\n")
    assert code == 0
    bodies = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    backends = [b["backend"] for b in bodies]
    assert sorted(backends[:3]) == ["b0", "b1", "b2"] and backends[3:] == backends[:3]  # round robin
    for body in bodies:
        headers = {k.lower(): v for k, v in body["headers"]}
        assert "x-secret" not in headers and "connection" not in headers, headers
        assert headers["x-forwarded-for"] == "10.0.0.9, 127.0.0.1"
        assert headers["forwarded"].startswith("for=127.0.0.1;proto=http")
    assert out.decode().count("200 1\n") == 1 and out.decode().count("200 0\n") == 5  # one connection

    urls = [f"{mesh.url}/status/503"] * 3 + [f"{mesh.url}/bytes/3"] * 3
    code, out, _ = await curl(*urls, "-w", "\n%{http_code}\n")
    assert code == 0
    assert re.findall(r"^(\d{3})$", out.decode(), re.MULTILINE) == ["503"] * 3 + ["200"] * 3
    assert out.decode().count("xxx") == 3

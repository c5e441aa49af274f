"""Opaque TCP through the sidecar, with real servers and clients: redis-server replicas and redis-cli /
redis-benchmark, socat servers (one speaks first, one answers after the client's half-close).

A node-mode sidecar serves Services on their own loopback addresses; the agent is the fake that serves the
real watch protocol (bench/proxy/fake_agent.py), so the tests control the endpoints exactly.
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "proxy"))
import fake_agent
from harness import Process, free_port, run, spawn, start_sidecar, wait_port

from meshd.model.endpoints import Endpoint, PortInfo, ServiceInfo, ServiceKey

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("redis-server", "redis-cli", "redis-benchmark", "socat")),
    reason="needs redis-server, redis-cli, redis-benchmark and socat",
)


def loopback() -> str:
    return f"127.215.{random.randint(1, 254)}.{random.randint(2, 254)}"


def service(name: str, address: str, port: int, port_name: str) -> ServiceInfo:
    return ServiceInfo(ServiceKey("default", name), address, (PortInfo(port_name, port, port),), {})


def endpoint(name: str, port: int, port_name: str) -> Endpoint:
    return Endpoint(name=name, address="127.0.0.1", ports={port_name: port})


@dataclass
class Mesh:
    agent: fake_agent.FakeAgent
    sidecar: Process
    metrics: int
    redis: dict[str, int]  # replica name -> its port
    tmp: Path

    async def cli(self, address: str, port: int, *args: str) -> str:
        code, out, err = await run("redis-cli", "-h", address, "-p", str(port), *args, timeout=20)
        assert code == 0, err
        return out.decode()

    async def served_by(self, address: str, port: int) -> int:
        """The port of the redis-server replica a new connection reached."""
        info = await self.cli(address, port, "info", "server")
        return int(re.search(r"tcp_port:(\d+)", info).group(1))  # type: ignore[union-attr]

    async def scrape(self) -> str:
        _, out, _ = await run("curl", "-s", f"http://127.0.0.1:{self.metrics}/metrics")
        return out.decode()


@pytest.fixture
async def mesh(tmp_path: Path):
    agent = fake_agent.FakeAgent(heartbeat=1.0)
    api = await agent.start()
    servers: list[Process] = []
    redis: dict[str, int] = {}
    for i in range(3):
        port = free_port()
        servers.append(await spawn(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            tmp_path / f"redis{i}.log",
        ))  # fmt: skip
        redis[f"r{i}"] = port
    for port in redis.values():
        await wait_port(port)
    sidecar, mport = await start_sidecar(
        api, tmp_path / "sidecar.log", "--detect-timeout", "0.2", "--tcp-idle-timeout", "2"
    )
    mesh = Mesh(agent, sidecar, mport, redis, tmp_path)
    yield mesh
    code = await sidecar.stop()
    for proc in servers:
        await proc.stop()
    await agent.stop()
    assert code == 0, sidecar.output()
    assert "Traceback" not in sidecar.output(), sidecar.output()


def redis_service(mesh: Mesh, name: str, port: int, port_name: str) -> str:
    address = loopback()
    mesh.agent.set_service(
        service(name, address, port, port_name),
        [endpoint(n, p, port_name) for n, p in mesh.redis.items()],
    )
    return address


async def benchmark(address: str, port: int) -> str:
    code, out, err = await run(
        "redis-benchmark",
        "-h",
        address,
        "-p",
        str(port),
        "-q",
        "-n",
        "2000",
        "-t",
        "ping,set,get",
        timeout=120,
    )
    text = out.decode()
    assert code == 0, (text, err)
    return text


@pytest.mark.parametrize(
    ("port", "port_name"),
    [(6379, "redis"), (6379, ""), (7000, "")],
    ids=["opaque-by-name", "opaque-by-port", "detected"],
)
async def test_redis_cli_and_benchmark_through_a_redis_service(mesh: Mesh, port: int, port_name: str):
    address = redis_service(mesh, "redis", port, port_name)
    await wait_port(port, address)
    assert (await mesh.cli(address, port, "ping")).strip() == "PONG"
    assert (await mesh.cli(address, port, "set", "greeting", "hello")).strip() == "OK"
    # a replica each connection: SET and GET may meet different servers; each server answers GET
    values = {(await mesh.cli(address, port, "get", "greeting")).strip() for _ in range(6)}
    assert values <= {"hello", ""}
    text = await benchmark(address, port)
    for test in ("PING_INLINE", "PING_MBULK", "SET", "GET"):
        assert re.search(rf"{test}: [\d.]+ requests per second", text), text
    assert "error" not in text.lower(), text


async def test_connections_spread_over_every_replica_and_a_refused_one_is_retried(mesh: Mesh):
    address = redis_service(mesh, "redis", 6379, "redis")
    dead = free_port()  # nothing listens there: connect is refused
    mesh.agent.add(ServiceKey("default", "redis"), endpoint("dead", dead, "redis"))
    await wait_port(6379, address)
    served = [await mesh.served_by(address, 6379) for _ in range(30)]
    assert set(served) == set(mesh.redis.values())  # every connection answered, every replica had some
    metrics = await mesh.scrape()
    refused = re.search(
        r'meshd_sidecar_upstream_attempts_total\{endpoint="dead",outcome="connect_error",service="default/redis"\} '
        r"(\d+)",
        metrics,
    )
    assert refused and int(refused.group(1)) >= 1, metrics
    opened = re.search(r'meshd_sidecar_tcp_connections_total\{service="default/redis"\} (\d+)', metrics)
    assert opened and int(opened.group(1)) >= 31, metrics  # wait_port's connection, then the 30


async def test_server_speaks_first_on_an_undeclared_port_after_the_detection_timeout(mesh: Mesh):
    port = free_port()
    banner = await spawn(
        [
            "socat",
            f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
            "SYSTEM:'echo 220 banner first; sleep 1'",
        ],
        mesh.tmp / "banner.log",
    )
    try:
        await wait_port(port)
        address = loopback()
        mesh.agent.set_service(service("mail", address, 2600, "mail"), [endpoint("m0", port, "mail")])
        await wait_port(2600, address)
        reader, writer = await asyncio.open_connection(address, 2600)  # says nothing: detection times out
        line = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        assert line == b"220 banner first\n"
    finally:
        await banner.stop()


async def test_half_close_passes_both_ways(mesh: Mesh):
    port = free_port()
    # the server reads until the client's FIN, then answers: the client must still read that answer
    echo = await spawn(
        ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr", "SYSTEM:'cat; echo done'"],
        mesh.tmp / "echo.log",
    )
    try:
        await wait_port(port)
        address = loopback()
        mesh.agent.set_service(service("echo", address, 9000, "tcp-echo"), [endpoint("e0", port, "tcp-echo")])
        await wait_port(9000, address)
        code, out, err = await run("socat", "-t", "5", "-", f"TCP:{address}:9000", stdin=b"hello\n")
        assert (code, out) == (0, b"hello\ndone\n"), err
        # 16 MB each way, more than any buffer on the path: back-pressure holds, nothing lost or reordered
        payload = random.randbytes(16 * 1024 * 1024)
        code, out, err = await run("socat", "-t", "10", "-", f"TCP:{address}:9000", stdin=payload)
        assert code == 0 and out == payload + b"done\n", (len(out), err)
    finally:
        await echo.stop()


async def test_a_removed_endpoint_keeps_its_connection_gets_no_new_one_and_is_acked_when_it_closes(
    mesh: Mesh,
):
    address = redis_service(mesh, "redis", 6379, "redis")
    key = ServiceKey("default", "redis")
    await wait_port(6379, address)
    reader, writer = await asyncio.open_connection(address, 6379)
    writer.write(b"*2\r\n$4\r\ninfo\r\n$6\r\nserver\r\n")
    await writer.drain()
    head = await reader.readline()  # $<length>
    info = (await reader.readexactly(int(head[1:]) + 2)).decode()
    port = int(re.search(r"tcp_port:(\d+)", info).group(1))  # type: ignore[union-attr]
    name = next(n for n, p in mesh.redis.items() if p == port)
    mesh.agent.remove(key, name)
    await asyncio.sleep(0.5)
    assert not [d for d in mesh.agent.drains if d["endpoint"] == name]  # its connection is still open
    assert {await mesh.served_by(address, 6379) for _ in range(10)} <= set(mesh.redis.values()) - {port}
    writer.write(b"*1\r\n$4\r\nPING\r\n")  # the old connection still works
    await writer.drain()
    assert await asyncio.wait_for(reader.readline(), 5) == b"+PONG\r\n"
    writer.close()
    for _ in range(100):
        if any(d["endpoint"] == name for d in mesh.agent.drains):
            break
        await asyncio.sleep(0.05)
    assert {"sidecar": mesh.agent.drains[-1]["sidecar"], "service": "default/redis", "endpoint": name} in (
        mesh.agent.drains
    )


async def test_http_on_an_undeclared_port_is_detected_and_served_as_http(mesh: Mesh):
    from harness import start_backend

    backend, port = await start_backend("b0", mesh.tmp / "b0.log")
    try:
        address = loopback()
        mesh.agent.set_service(service("web", address, 8080, ""), [endpoint("w0", port, "")])
        await wait_port(8080, address)
        code, out, _ = await run("curl", "-s", "-i", f"http://{address}:8080/")
        assert code == 0 and out.startswith(b"HTTP/1.1 200") and out.endswith(b"hello from b0\n"), out
        metrics = await mesh.scrape()  # the HTTP codec served it (per request), not an opaque tunnel
        assert (
            'meshd_sidecar_requests_total{code_class="2xx",method="GET",service="default/web"} 1.0' in metrics
        )
        assert 'meshd_sidecar_tcp_bytes_total{direction="to_endpoint",service="default/web"} 0.0' in metrics
    finally:
        await backend.stop()


async def test_an_idle_connection_is_closed_after_the_idle_timeout(mesh: Mesh):
    address = redis_service(mesh, "redis", 6379, "redis")
    await wait_port(6379, address)
    reader, writer = await asyncio.open_connection(address, 6379)
    writer.write(b"*1\r\n$4\r\nPING\r\n")
    await writer.drain()
    assert await reader.readline() == b"+PONG\r\n"
    # the sidecar runs with --tcp-idle-timeout 2: after 2 quiet seconds it closes both sides
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()

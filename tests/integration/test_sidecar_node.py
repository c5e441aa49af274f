"""Node mode: one sidecar serves every Service on its own address (binds and unbinds as Services change)."""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "proxy"))
import backend
import fake_agent
from harness import free_port, run, start_sidecar, wait_port

from meshd.model.endpoints import ServiceKey

pytestmark = pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")


def loopback() -> str:
    """A random 127.214.x.y address (Linux routes all of 127/8 to lo)."""
    return f"127.214.{random.randint(200, 254)}.{random.randint(2, 254)}"


async def test_node_mode_binds_each_service_address_routes_by_host_and_follows_changes(tmp_path: Path):
    agent = fake_agent.FakeAgent()
    api = await agent.start()
    runners = []
    ports = []
    for name in ("web", "api", "shared"):
        runner, port = await backend.start(name)
        runners.append(runner)
        ports.append(port)
    web_addr, shared_addr = loopback(), loopback()
    sport = free_port()
    # a port someone else holds: that Service fails to bind, the others are not affected
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    busy_addr = loopback()
    blocker.bind((busy_addr, sport))
    blocker.listen()
    agent.set_service(
        fake_agent.service("web", web_addr, sport), [fake_agent.endpoint("w0", "127.0.0.1", ports[0])]
    )
    agent.set_service(
        fake_agent.service("api", shared_addr, sport, namespace="shop"),
        [fake_agent.endpoint("a0", "127.0.0.1", ports[1])],
    )
    agent.set_service(
        fake_agent.service("other", shared_addr, sport), [fake_agent.endpoint("o0", "127.0.0.1", ports[2])]
    )
    agent.set_service(
        fake_agent.service("busy", busy_addr, sport), [fake_agent.endpoint("x0", "127.0.0.1", ports[0])]
    )
    sidecar, _ = await start_sidecar(api, tmp_path / "sidecar.log")
    try:
        await wait_port(sport, web_addr)
        await wait_port(sport, shared_addr)
        _, out, _ = await run("curl", "-s", f"http://{web_addr}:{sport}/")
        assert out == b"hello from web\n"
        # two Services on one address: routed by Host, in any of the Kubernetes spellings
        for host, body in [("api.shop", b"hello from api\n"), ("api.shop.svc.cluster.local", b"hello from api\n"),
                           ("other", b"hello from shared\n"), ("other.default.svc", b"hello from shared\n")]:  # fmt: skip
            _, out, _ = await run("curl", "-s", "-H", f"Host: {host}", f"http://{shared_addr}:{sport}/")
            assert out == body, host
        _, out, _ = await run("curl", "-s", "-i", "-H", "Host: nope", f"http://{shared_addr}:{sport}/")
        assert out.startswith(b"HTTP/1.1 404")
        assert "cannot listen on" in sidecar.output() and busy_addr in sidecar.output()
        # the port frees up: the sidecar binds it on its next try
        blocker.close()
        await wait_port(sport, busy_addr, timeout=10)
        # a Service deleted: its address is unbound
        agent.delete(ServiceKey("default", "web"))
        for _ in range(100):
            code, _, _ = await run("curl", "-s", f"http://{web_addr}:{sport}/")
            if code == 7:  # connection refused
                break
            await asyncio.sleep(0.1)
        assert code == 7
    finally:
        blocker.close()
        assert await sidecar.stop() == 0, sidecar.output()
        for runner in runners:
            await runner.cleanup()
        await agent.stop()


async def test_sigterm_lets_in_flight_requests_finish(tmp_path: Path):
    agent = fake_agent.FakeAgent()
    api = await agent.start()
    runner, bport = await backend.start("b")
    agent.set_service(fake_agent.service("web", None, 80), [fake_agent.endpoint("b", "127.0.0.1", bport)])
    port = free_port()
    sidecar, _ = await start_sidecar(api, tmp_path / "s.log", "--listen", f"127.0.0.1:{port}", "--service", "web",
                                     listen_port=port)  # fmt: skip
    try:
        slow = asyncio.create_task(run("curl", "-s", f"http://127.0.0.1:{port}/sleep/1"))
        await asyncio.sleep(0.3)
        stopping = asyncio.create_task(sidecar.stop())
        _, out, _ = await slow
        assert out == b"slept on b\n"
        assert await stopping == 0
        code, _, _ = await run("curl", "-s", f"http://127.0.0.1:{port}/")
        assert code == 7  # no longer listening
    finally:
        await sidecar.stop()
        await runner.cleanup()
        await agent.stop()


async def test_workers_share_the_port_and_stop_together(tmp_path: Path):
    agent = fake_agent.FakeAgent()
    api = await agent.start()
    runner, bport = await backend.start("b")
    agent.set_service(fake_agent.service("web", None, 80), [fake_agent.endpoint("b", "127.0.0.1", bport)])
    port = free_port()
    sidecar, _ = await start_sidecar(api, tmp_path / "s.log", "--listen", f"127.0.0.1:{port}", "--service", "web",
                                     "--workers", "2", "--id", "node1", listen_port=port)  # fmt: skip
    try:
        await asyncio.wait_for(_until(lambda: agent.watchers >= 2), 10)  # one watch per worker
        code, out, _ = await run("curl", "-s", *[f"http://127.0.0.1:{port}/bytes/1"] * 20)
        assert (code, out) == (0, b"x" * 20)
        assert await sidecar.stop() == 0
    finally:
        await sidecar.stop()
        await runner.cleanup()
        await agent.stop()


async def _until(predicate) -> None:  # type: ignore[no-untyped-def]
    while not predicate():
        await asyncio.sleep(0.05)

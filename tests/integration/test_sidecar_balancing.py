"""Balancing and resilience with real processes: backends, the sidecar, and `hey`/curl as clients.

The agent is a fake serving the real watch protocol (tests/…/bench/proxy/fake_agent.py), so each test
controls the endpoint stream exactly: removals, drain acks, the agent going away and coming back.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "proxy"))
import fake_agent
from harness import Process, free_port, run, start_backend, start_sidecar

from meshd.model.endpoints import ServiceKey

pytestmark = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("hey")), reason="needs curl and hey"
)
KEY = ServiceKey("default", "web")


@dataclass
class Mesh:
    agent: fake_agent.FakeAgent
    sidecar: Process
    port: int
    backends: dict[str, tuple[Process, int]]
    metrics: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def served(self, name: str) -> int:
        code, out, _ = await run("curl", "-s", f"http://127.0.0.1:{self.backends[name][1]}/count")
        return int(out) if code == 0 else -1


@pytest.fixture
async def mesh(tmp_path: Path):
    agent = fake_agent.FakeAgent(heartbeat=1.0)
    api = await agent.start()
    backends = {}
    for i in range(3):
        backends[f"b{i}"] = await start_backend(f"b{i}", tmp_path / f"b{i}.log")
    agent.set_service(
        fake_agent.service("web", None, 80, annotations={"meshd.io/lb-algorithm": "least_request"}),
        [fake_agent.endpoint(name, "127.0.0.1", port) for name, (_, port) in backends.items()],
    )
    port = free_port()
    sidecar, mport = await start_sidecar(
        api, tmp_path / "sidecar.log", "--listen", f"127.0.0.1:{port}", "--service", "web", "--id", "test-sidecar",
        listen_port=port,
    )  # fmt: skip
    mesh = Mesh(agent, sidecar, port, backends, mport)
    yield mesh
    code = await sidecar.stop()
    for proc, _ in backends.values():
        await proc.stop()
    await agent.stop()
    if mesh.agent is not agent:  # a test replaced the agent (it "came back")
        await mesh.agent.stop()
    assert code == 0, sidecar.output()
    assert "Traceback" not in sidecar.output(), sidecar.output()


def hey_summary(out: bytes) -> tuple[dict[int, int], str]:
    text = out.decode()
    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", text)}
    errors = text.split("Error distribution:", 1)[1] if "Error distribution:" in text else ""
    return codes, errors


async def test_requests_spread_across_three_replicas(mesh: Mesh):
    code, out, _ = await run("hey", "-n", "600", "-c", "6", mesh.url + "/")
    codes, errors = hey_summary(out)
    assert code == 0 and codes == {200: 600} and not errors
    counts = [await mesh.served(f"b{i}") for i in range(3)]
    assert sum(counts) == 600
    assert min(counts) >= 100, counts  # every replica takes a real share


async def test_removed_endpoint_gets_no_new_requests_and_is_acked_after_its_last_request(mesh: Mesh):
    # round robin: three slow requests put one in flight on every endpoint; then b0 leaves the stream
    mesh.agent.set_service(
        fake_agent.service("web", None, 80),
        [fake_agent.endpoint(name, "127.0.0.1", port) for name, (_, port) in mesh.backends.items()],
    )
    await asyncio.sleep(0.3)
    slow = [asyncio.create_task(run("curl", "-s", mesh.url + "/sleep/2")) for _ in range(3)]
    await asyncio.sleep(0.5)
    before = await mesh.served("b0")
    mesh.agent.remove(KEY, "b0")
    await asyncio.sleep(0.3)
    assert not [d for d in mesh.agent.drains if d["endpoint"] == "b0"]  # its request is still in flight
    _, out, _ = await run("hey", "-n", "200", "-c", "4", mesh.url + "/")
    assert hey_summary(out) == ({200: 200}, "")
    assert await mesh.served("b0") == before  # nothing new after the removal
    results = await asyncio.gather(*slow)
    assert all(out.startswith(b"slept on") for _, out, _ in results)  # in-flight requests finished
    await asyncio.wait_for(_until(lambda: any(d["endpoint"] == "b0" for d in mesh.agent.drains)), 5)
    assert {"sidecar": "test-sidecar", "service": "default/web", "endpoint": "b0"} in mesh.agent.drains


async def test_removing_an_idle_endpoint_is_acked_at_once(mesh: Mesh):
    mesh.agent.remove(KEY, "b2")
    await asyncio.wait_for(_until(lambda: any(d["endpoint"] == "b2" for d in mesh.agent.drains)), 5)


@pytest.mark.slow
async def test_replica_killed_under_load_costs_no_failed_request(mesh: Mesh):
    load = asyncio.create_task(run("hey", "-z", "4s", "-c", "8", "-q", "100", mesh.url + "/"))
    await asyncio.sleep(1.5)
    await mesh.backends["b1"][0].stop(signal.SIGKILL)
    code, out, _ = await load
    codes, errors = hey_summary(out)
    assert code == 0
    assert set(codes) == {200} and codes[200] > 500, out.decode()
    assert not errors, errors


@pytest.mark.slow
async def test_keeps_serving_without_the_agent_and_follows_it_when_it_returns(mesh: Mesh):
    port = mesh.agent.port
    # the sidecar knows the endpoints before the agent goes (it listens for --service web at once, and an agent
    # stopped before its first watch connected leaves it nothing to keep: 503, as it should)
    await asyncio.wait_for(_until(lambda: mesh.agent.watchers > 0), 30)
    _, out, _ = await run("hey", "-n", "3", "-c", "1", mesh.url + "/")
    assert hey_summary(out) == ({200: 3}, "")
    await mesh.agent.stop()
    for _ in range(3):
        _, out, _ = await run("hey", "-n", "60", "-c", "3", mesh.url + "/")
        assert hey_summary(out) == ({200: 60}, "")
        await asyncio.sleep(0.3)
    # the agent comes back knowing only b2 (b0 and b1 went away meanwhile)
    agent = fake_agent.FakeAgent(heartbeat=1.0)
    agent.set_service(
        fake_agent.service("web", None, 80), [fake_agent.endpoint("b2", "127.0.0.1", mesh.backends["b2"][1])]
    )
    await agent.start(port=port)
    mesh.agent = agent
    await asyncio.wait_for(_until(lambda: agent.watchers > 0), 30)
    await asyncio.wait_for(_until(lambda: len({d["endpoint"] for d in agent.drains}) == 2), 30)
    before = [await mesh.served(f"b{i}") for i in range(3)]
    _, out, _ = await run("hey", "-n", "90", "-c", "3", mesh.url + "/")
    assert hey_summary(out) == ({200: 90}, "")
    after = [await mesh.served(f"b{i}") for i in range(3)]
    assert [a - b for a, b in zip(after, before, strict=True)][:2] == [0, 0]
    assert after[2] - before[2] == 90


async def test_a_failing_replica_is_retried_around_and_ejected(mesh: Mesh, tmp_path: Path):
    bad, bad_port = await start_backend("bad", tmp_path / "bad.log", "--fail-status", "503")
    try:
        mesh.agent.add(KEY, fake_agent.endpoint("bad", "127.0.0.1", bad_port))
        await asyncio.sleep(0.3)
        _, out, _ = await run("hey", "-n", "300", "-c", "3", mesh.url + "/")
        assert hey_summary(out) == ({200: 300}, "")  # idempotent GETs: 503s retried on another replica
        _, count, _ = await run("curl", "-s", f"http://127.0.0.1:{bad_port}/count")
        assert 5 <= int(count) < 60  # ejected after 5 consecutive failures
        _, out, _ = await run("hey", "-n", "20", "-c", "2", "-m", "POST", "-d", "x", mesh.url + "/echo")
        assert hey_summary(out)[0] == {200: 20}  # the ejected replica gets no POST either
        _, text, _ = await run("curl", "-s", f"http://127.0.0.1:{mesh.metrics}/metrics")
        assert 'meshd_sidecar_ejections_total{service="default/web"} 1.0' in text.decode()
        assert 'meshd_sidecar_endpoints{service="default/web",state="ejected"} 1.0' in text.decode()
        assert re.search(rb'meshd_sidecar_retries_total\{service="default/web"\} [1-9]', text)
    finally:
        await bad.stop()


async def _until(predicate) -> None:  # type: ignore[no-untyped-def]
    while not predicate():
        await asyncio.sleep(0.05)

"""trafficDistribution: PreferClose through a real sidecar process (`--node a`) and real backends, with curl as the
client: the endpoints of node "a" get every request while one of them is ready, the other node's only when none
is. The agent is the fake serving the real watch protocol (bench/proxy/fake_agent.py), so the test sets each
endpoint's node and readiness exactly."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "proxy"))
import fake_agent
from harness import free_port, run, start_backend, start_sidecar

from meshd.model.endpoints import Endpoint, ServiceKey

pytestmark = pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")
KEY = ServiceKey("default", "web")
NODES = {"a1": "a", "b1": "b", "b2": "b"}


async def served(url: str, n: int = 30) -> Counter[str]:
    """Which backends answered `n` requests (curl, one connection each)."""
    seen: Counter[str] = Counter()
    for _ in range(n):
        code, out, _ = await run("curl", "-s", "-m", "10", url)
        seen[out.decode().strip().removeprefix("hello from ") if code == 0 else f"curl exit {code}"] += 1
    return seen


async def test_prefer_close_keeps_to_the_sidecars_node_while_an_endpoint_there_is_ready(tmp_path: Path) -> None:
    agent = fake_agent.FakeAgent(heartbeat=1.0)
    api = await agent.start()
    backends = {name: await start_backend(name, tmp_path / f"{name}.log") for name in NODES}
    endpoints = {name: dataclasses.replace(fake_agent.endpoint(name, "127.0.0.1", port), node=NODES[name])
                 for name, (_, port) in backends.items()}
    info = dataclasses.replace(fake_agent.service("web", None, 80), traffic_distribution="PreferClose")
    agent.set_service(info, list(endpoints.values()))
    port = free_port()
    sidecar, _ = await start_sidecar(api, tmp_path / "sidecar.log", "--listen", f"127.0.0.1:{port}", "--service",
                                     "web", "--node", "a", listen_port=port)
    url = f"http://127.0.0.1:{port}/"
    try:
        assert set(await served(url)) == {"a1"}  # node a's endpoint only

        def ready(name: str, is_ready: bool) -> Endpoint:
            return dataclasses.replace(endpoints[name], ready=is_ready)

        agent.add(KEY, ready("a1", False))  # nothing local is ready: every ready endpoint, on node b
        await eventually_served(url, {"b1", "b2"})
        agent.add(KEY, ready("a1", True))
        await eventually_served(url, {"a1"})

        agent.set_service(fake_agent.service("web", None, 80), list(endpoints.values()))  # no preference asked
        await eventually_served(url, {"a1", "b1", "b2"})
    finally:
        code = await sidecar.stop()
        for proc, _ in backends.values():
            await proc.stop()
        await agent.stop()
    assert code == 0, sidecar.output()
    assert "Traceback" not in sidecar.output(), sidecar.output()


async def eventually_served(url: str, expected: set[str], timeout: float = 30.0) -> None:
    """Once the sidecar has the update, `expected` exactly answer a round of requests."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        seen = set(await served(url))
        if seen == expected:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"served by {sorted(seen)}, expected {sorted(expected)}")
        await asyncio.sleep(0.2)

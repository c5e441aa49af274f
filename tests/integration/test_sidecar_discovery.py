"""The discovery client against a (fake) agent over real HTTP: snapshot, Synced, live updates, reconnects."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "proxy"))
import fake_agent

from meshd.model.endpoints import ServiceKey
from sidecar.discovery import Backoff, DiscoveryClient, normalize_api
from sidecar.services import ServiceTable

WEB, API = ServiceKey("default", "web"), ServiceKey("default", "api")


async def until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async def wait() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(wait(), timeout)


def test_normalize_api():
    assert normalize_api(None) == "http://127.0.0.1:7700"
    assert normalize_api("10.0.0.1:7700") == "http://10.0.0.1:7700"
    assert normalize_api("http://agent:7700/") == "http://agent:7700"


async def test_snapshot_live_updates_reconnect_and_synced():
    agent = fake_agent.FakeAgent()
    api = await agent.start()
    port = agent.port
    agent.set_service(
        fake_agent.service("web", "127.214.0.1", 80), [fake_agent.endpoint("w0", "127.0.0.1", 1)]
    )
    agent.set_service(
        fake_agent.service("api", "127.214.0.2", 80), [fake_agent.endpoint("a0", "127.0.0.1", 2)]
    )
    table = ServiceTable()
    client = DiscoveryClient(api, table, sidecar_id="t1", backoff=Backoff(base=0.05, cap=0.2))
    table._on_drained = client.drained
    task = asyncio.create_task(client.run())
    try:
        await asyncio.wait_for(client.synced.wait(), 10)
        assert set(table.services) == {WEB, API}
        agent.add(WEB, fake_agent.endpoint("w1", "127.0.0.1", 3))
        await until(lambda: len(table.services[WEB].available) == 2)
        agent.remove(WEB, "w0")
        await until(lambda: any(d["endpoint"] == "w0" for d in agent.drains))
        assert agent.drains[0] == {"sidecar": "t1", "service": "default/web", "endpoint": "w0"}

        # the agent goes away: the table keeps everything
        await agent.stop()
        await asyncio.sleep(0.5)
        assert [e.name for e in table.services[WEB].available] == ["w1"] and table.services[API].exists

        # it comes back without the api Service: dropped once the new snapshot is Synced
        agent2 = fake_agent.FakeAgent()
        agent2.set_service(
            fake_agent.service("web", "127.214.0.1", 80), [fake_agent.endpoint("w2", "127.0.0.1", 4)]
        )
        await agent2.start(port=port)
        await until(lambda: not table.services[API].exists)
        assert [e.name for e in table.services[WEB].available] == ["w2"]
        assert client.connects == 2
        await agent2.stop()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_single_service_route():
    agent = fake_agent.FakeAgent()
    api = await agent.start()
    agent.set_service(fake_agent.service("web", None, 80), [fake_agent.endpoint("w0", "127.0.0.1", 1)])
    agent.set_service(fake_agent.service("api", None, 80), [fake_agent.endpoint("a0", "127.0.0.1", 2)])
    table = ServiceTable(only=WEB)
    client = DiscoveryClient(api, table, sidecar_id="t2", service=WEB)
    task = asyncio.create_task(client.run())
    try:
        await asyncio.wait_for(client.synced.wait(), 10)
        assert set(table.services) == {WEB}
        agent.delete(WEB)
        await until(lambda: not table.services[WEB].exists)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await agent.stop()

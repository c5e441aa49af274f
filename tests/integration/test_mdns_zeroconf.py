"""On real multicast sockets (127.0.0.1): a zeroconf browser in another process sees adverts come and go."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from meshd.mdns.advertiser import MdnsAdvertiser
from meshd.model.endpoints import PortInfo, ServiceInfo, ServiceKey
from meshd.registry.endpoints import PodRecord
from meshd.registry.registry import Registry

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

WEB = "web@default._http._tcp.local."

# A browser the project didn't write: python-zeroconf's AsyncServiceBrowser, resolving each instance it sees.
BROWSER = r"""
import asyncio, json, sys
from zeroconf import ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

def say(**event):
    print(json.dumps(event), flush=True)

async def main():
    aiozc = AsyncZeroconf(interfaces=["127.0.0.1"])
    tasks = set()

    async def resolve(type_, name, event):
        info = AsyncServiceInfo(type_, name)
        if await info.async_request(aiozc.zeroconf, 3000):
            say(event=event, name=name, port=info.port, server=info.server,
                addresses=info.parsed_addresses(), properties=info.decoded_properties)
        else:
            say(event=event + "-unresolved", name=name)

    def on_change(zeroconf, service_type, name, state_change):
        if state_change is ServiceStateChange.Removed:
            say(event="removed", name=name)
        else:
            task = asyncio.ensure_future(resolve(service_type, name, state_change.name.lower()))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    browser = AsyncServiceBrowser(aiozc.zeroconf, sys.argv[1:], handlers=[on_change])
    await aiozc.zeroconf.async_wait_for_start()
    say(event="ready")
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the test closes stdin
    await browser.async_cancel()
    await aiozc.async_close()

asyncio.run(main())
"""


class Browser:
    """A zeroconf browser subprocess; `next_event(...)` takes the first matching JSON line it printed (or prints)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.seen: list[dict[str, Any]] = []
        self.unmatched: list[dict[str, Any]] = []

    async def next_event(self, event: str, name: str | None, *, timeout: float = 20.0) -> dict[str, Any]:
        for data in self.unmatched:
            if data["event"] == event and data.get("name") == name:
                self.unmatched.remove(data)
                return data

        async def read() -> dict[str, Any]:
            assert self.process.stdout is not None
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    raise AssertionError(f"browser exited; saw {self.seen}")
                data = json.loads(line)
                self.seen.append(data)
                if data["event"] == event and data.get("name") == name:
                    return data
                self.unmatched.append(data)

        try:
            return await asyncio.wait_for(read(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {event} {name} within {timeout}s; saw {self.seen}") from None


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        BROWSER,
        "_http._tcp.local.",
        "_postgres._tcp.local.",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    result = Browser(process)
    await result.next_event("ready", None)
    yield result
    assert process.stdin is not None
    process.stdin.close()
    try:
        await asyncio.wait_for(process.wait(), 10)
    except TimeoutError:
        process.kill()
        await process.wait()


def web_pod(name: str, *, ready: bool, address: str = "127.213.0.2") -> PodRecord:
    return PodRecord("default", name, {"app": "web"}, address, ready=ready)


async def test_a_browser_in_another_process_sees_the_service_come_and_go(browser: Browser) -> None:
    registry = Registry(node="n1")
    registry.upsert_service(
        ServiceInfo(ServiceKey("default", "web"), "127.214.0.1", (PortInfo("http", 80, 8080),)),
        {"app": "web"},
    )
    registry.upsert_pod(web_pod("web-1", ready=False))
    advertiser = MdnsAdvertiser(registry, interfaces=["127.0.0.1"], node_name="n1")
    await advertiser.start()
    try:
        await advertiser.wait_idle()
        assert advertiser.published == {}

        registry.upsert_pod(web_pod("web-1", ready=True))
        added = await browser.next_event("added", WEB)
        assert added["port"] == 80 and added["addresses"] == ["127.214.0.1"]
        assert added["server"] == "n1-127-214-0-1.local."
        assert added["properties"] == {
            "namespace": "default",
            "service": "web",
            "port": "http",
            "node": "n1",
            "nodes": "n1",
            "meshd": "1",
        }

        registry.upsert_service(  # a new Service address: an update under the same instance name
            ServiceInfo(ServiceKey("default", "web"), "127.214.0.7", (PortInfo("http", 80, 8080),)),
            {"app": "web"},
        )
        updated = await browser.next_event("updated", WEB)
        assert updated["addresses"] == ["127.214.0.7"] and updated["server"] == "n1-127-214-0-7.local."

        registry.upsert_pod(web_pod("web-1", ready=False))  # nothing ready: goodbye
        await browser.next_event("removed", WEB)

        registry.upsert_pod(web_pod("web-1", ready=True))  # back again at once, under the same name
        await browser.next_event("added", WEB)
        await advertiser.wait_idle()
        assert list(advertiser.published) == [WEB]
    finally:
        await advertiser.close()
    await browser.next_event("removed", WEB)  # close() says goodbye too


async def test_a_headless_service_is_seen_per_ready_endpoint(browser: Browser) -> None:
    registry = Registry(node="n1")
    registry.upsert_service(
        ServiceInfo(ServiceKey("data", "db"), None, (PortInfo("postgres", 5432, 5432),)), {"app": "db"}
    )
    for i in (0, 1):
        registry.upsert_pod(PodRecord("data", f"db-{i}", {"app": "db"}, f"127.213.0.{10 + i}", ready=True))
    advertiser = MdnsAdvertiser(registry, interfaces=["127.0.0.1"], node_name="n1")
    await advertiser.start()
    try:
        db0 = await browser.next_event("added", "db@data:db-0._postgres._tcp.local.")
        db1 = await browser.next_event("added", "db@data:db-1._postgres._tcp.local.")
        assert (db0["addresses"], db0["port"]) == (["127.213.0.10"], 5432)
        assert (db1["addresses"], db1["properties"]["endpoint"]) == (["127.213.0.11"], "db-1")
        registry.delete_pod("data", "db-0")
        await browser.next_event("removed", "db@data:db-0._postgres._tcp.local.")
    finally:
        await advertiser.close()
    await browser.next_event("removed", "db@data:db-1._postgres._tcp.local.")

"""The advertiser follows the registry: register, update, goodbye; coalesces bursts; survives zeroconf errors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from zeroconf.asyncio import AsyncServiceInfo

from meshd.mdns.advertiser import ANNOUNCEMENTS, SERVICES, MdnsAdvertiser
from meshd.metrics import REGISTRY
from meshd.model.endpoints import PortInfo, ServiceInfo, ServiceKey
from meshd.registry.endpoints import PodRecord
from meshd.registry.registry import Registry

WEB = "web@default._http._tcp.local."


class FakeZeroconf:
    """Records what the advertiser asks of AsyncZeroconf; `fail` makes the next N calls of a kind raise."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.registered: dict[str, AsyncServiceInfo] = {}
        self.fail: dict[str, int] = {}
        self.closed = False

    def _maybe_fail(self, kind: str) -> None:
        if self.fail.get(kind, 0) > 0:
            self.fail[kind] -= 1
            raise OSError(f"{kind} failed")

    async def _done(self) -> None:
        return None

    async def async_register_service(self, info: AsyncServiceInfo, **_: Any) -> Any:
        self._maybe_fail("register")
        self.calls.append(("register", info.name))
        self.registered[info.name] = info
        return asyncio.ensure_future(self._done())

    async def async_update_service(self, info: AsyncServiceInfo) -> Any:
        self._maybe_fail("update")
        self.calls.append(("update", info.name))
        self.registered[info.name] = info
        return asyncio.ensure_future(self._done())

    async def async_unregister_service(self, info: AsyncServiceInfo) -> Any:
        self._maybe_fail("unregister")
        self.calls.append(("unregister", info.name))
        del self.registered[info.name]
        return asyncio.ensure_future(self._done())

    async def async_close(self) -> None:
        self.closed = True


def web_service(address: str = "127.214.0.1") -> ServiceInfo:
    return ServiceInfo(ServiceKey("default", "web"), address, (PortInfo("http", 80, 8080),))


def web_pod(name: str, *, ready: bool, address: str = "127.213.0.2") -> PodRecord:
    return PodRecord("default", name, {"app": "web"}, address, ready=ready)


def counter(action: str) -> float:
    return REGISTRY.get_sample_value("meshd_mdns_announcements_total", {"action": action}) or 0.0


@pytest.fixture
async def setup() -> Any:
    registry = Registry(node="n1")
    fake = FakeZeroconf()
    advertiser = MdnsAdvertiser(
        registry, interfaces=["127.0.0.1"], node_name="n1", retry_delay=0.01, zeroconf_factory=lambda: fake
    )
    await advertiser.start()
    yield registry, fake, advertiser
    await advertiser.close()


async def test_advertised_when_an_endpoint_is_ready_and_withdrawn_when_none_is(setup: Any) -> None:
    registry, fake, advertiser = setup
    registry.upsert_service(web_service(), {"app": "web"})
    registry.upsert_pod(web_pod("web-1", ready=False))
    await advertiser.wait_idle()
    assert fake.calls == []

    registry.upsert_pod(web_pod("web-1", ready=True))
    await advertiser.wait_idle()
    assert fake.calls == [("register", WEB)]
    info = fake.registered[WEB]
    assert info.port == 80 and info.parsed_addresses() == ["127.214.0.1"]
    assert info.decoded_properties == {
        "namespace": "default",
        "service": "web",
        "port": "http",
        "node": "n1",
        "nodes": "n1",
        "meshd": "1",
    }
    assert REGISTRY.get_sample_value("meshd_mdns_services") == 1

    registry.upsert_pod(web_pod("web-1", ready=False))
    await advertiser.wait_idle()
    assert fake.calls[-1] == ("unregister", WEB) and fake.registered == {}
    assert REGISTRY.get_sample_value("meshd_mdns_services") == 0


async def test_a_burst_of_updates_is_one_reconcile(setup: Any) -> None:
    registry, fake, advertiser = setup
    registry.upsert_service(web_service(), {"app": "web"})
    for i in range(20):  # pods come and go within one loop tick
        registry.upsert_pod(web_pod(f"web-{i}", ready=True, address=f"127.213.0.{i + 2}"))
        registry.upsert_pod(web_pod(f"web-{i}", ready=False, address=f"127.213.0.{i + 2}"))
    registry.upsert_pod(web_pod("web-0", ready=True))
    await advertiser.wait_idle()
    assert fake.calls == [("register", WEB)]


async def test_a_changed_service_address_is_an_update_under_the_same_name(setup: Any) -> None:
    registry, fake, advertiser = setup
    registry.upsert_service(web_service(), {"app": "web"})
    registry.upsert_pod(web_pod("web-1", ready=True))
    await advertiser.wait_idle()
    registry.upsert_service(web_service("127.214.0.9"), {"app": "web"})
    await advertiser.wait_idle()
    assert fake.calls == [("register", WEB), ("update", WEB)]
    assert fake.registered[WEB].parsed_addresses() == ["127.214.0.9"]


async def test_deleting_the_service_says_goodbye(setup: Any) -> None:
    registry, fake, advertiser = setup
    registry.upsert_service(web_service(), {"app": "web"})
    registry.upsert_pod(web_pod("web-1", ready=True))
    await advertiser.wait_idle()
    registry.delete_service(ServiceKey("default", "web"))
    await advertiser.wait_idle()
    assert fake.calls == [("register", WEB), ("unregister", WEB)]


async def test_close_withdraws_everything_and_closes_zeroconf() -> None:
    registry = Registry()
    registry.upsert_service(web_service(), {"app": "web"})
    registry.upsert_pod(web_pod("web-1", ready=True))
    fake = FakeZeroconf()
    advertiser = MdnsAdvertiser(registry, node_name="n1", zeroconf_factory=lambda: fake)
    await advertiser.start()
    await advertiser.wait_idle()
    assert WEB in fake.registered  # the state at start() is advertised without any update
    await advertiser.close()
    assert fake.registered == {} and fake.closed
    registry.upsert_pod(web_pod("web-2", ready=True))  # no longer followed
    await asyncio.sleep(0)
    assert fake.calls == [("register", WEB), ("unregister", WEB)]


async def test_a_failed_registration_is_logged_and_retried(setup: Any, caplog: Any) -> None:
    registry, fake, _advertiser = setup
    fake.fail["register"] = 2
    errors_before = REGISTRY.get_sample_value("meshd_mdns_errors_total") or 0
    registry.upsert_service(web_service(), {"app": "web"})
    registry.upsert_pod(web_pod("web-1", ready=True))
    for _ in range(200):
        await asyncio.sleep(0.01)
        if WEB in fake.registered:
            break
    assert WEB in fake.registered
    assert REGISTRY.get_sample_value("meshd_mdns_errors_total") == errors_before + 2
    assert "registering web@default._http._tcp.local. failed" in caplog.text


async def test_a_zeroconf_that_cannot_open_is_retried_not_fatal(caplog: Any) -> None:
    registry = Registry()
    registry.upsert_service(web_service(), {"app": "web"})
    registry.upsert_pod(web_pod("web-1", ready=True))
    fake = FakeZeroconf()
    attempts = []

    def factory() -> FakeZeroconf:
        attempts.append(1)
        if len(attempts) < 3:
            raise OSError("cannot bind")
        return fake

    advertiser = MdnsAdvertiser(registry, node_name="n1", retry_delay=0.01, zeroconf_factory=factory)
    await advertiser.start()
    for _ in range(200):
        await asyncio.sleep(0.01)
        if fake.registered:
            break
    await advertiser.close()
    assert len(attempts) == 3 and fake.calls == [("register", WEB), ("unregister", WEB)]
    assert "cannot bind" in caplog.text


async def test_announcement_counters_count_each_action(setup: Any) -> None:
    registry, _fake, advertiser = setup
    before = {a: counter(a) for a in ("register", "update", "unregister")}
    registry.upsert_service(web_service(), {"app": "web"})
    registry.upsert_pod(web_pod("web-1", ready=True))
    await advertiser.wait_idle()
    registry.upsert_service(web_service("127.214.0.9"), {"app": "web"})
    await advertiser.wait_idle()
    registry.delete_pod("default", "web-1")
    await advertiser.wait_idle()
    assert {a: counter(a) - before[a] for a in before} == {"register": 1, "update": 1, "unregister": 1}


def test_metrics_exist_from_start() -> None:
    assert ANNOUNCEMENTS is not None and SERVICES is not None
    for action in ("register", "update", "unregister"):
        assert REGISTRY.get_sample_value("meshd_mdns_announcements_total", {"action": action}) is not None
    assert REGISTRY.get_sample_value("meshd_mdns_services") is not None


async def test_a_worker_that_dies_is_restarted(setup: Any, caplog: Any) -> None:
    registry, fake, advertiser = setup
    await advertiser.wait_idle()
    original = advertiser._idle.set
    calls = []

    def explode_once() -> None:  # a bug outside the guarded reconcile kills the worker once
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        original()

    advertiser._idle.set = explode_once
    registry.upsert_service(web_service(), {"app": "web"})
    registry.upsert_pod(web_pod("web-1", ready=True))
    await asyncio.sleep(0.05)
    advertiser._idle.set = original
    await advertiser.wait_idle()
    assert WEB in fake.registered
    assert "task mdns-advertiser died" in caplog.text


async def test_an_inactive_advertiser_publishes_nothing_until_it_leads_and_withdraws_when_it_stops() -> None:
    """In a cluster one agent (the leader) advertises for all: the others stay silent, and hand over with goodbyes."""
    registry = Registry(node="n1")
    registry.upsert_service(web_service(), {"app": "web"})
    registry.upsert_pod(web_pod("web-1", ready=True))
    fake = FakeZeroconf()
    advertiser = MdnsAdvertiser(registry, node_name="n1", zeroconf_factory=lambda: fake, active=False)
    await advertiser.start()
    await advertiser.wait_idle()
    assert fake.calls == []
    advertiser.set_active(True)
    await advertiser.wait_idle()
    assert fake.calls == [("register", WEB)]
    advertiser.set_active(False)
    await advertiser.wait_idle()
    assert fake.calls == [("register", WEB), ("unregister", WEB)] and fake.registered == {}
    await advertiser.close()

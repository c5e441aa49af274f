"""The registry: endpoints from pods and selectors, and the Reset/Add/Remove/DoesNotExist stream."""

from __future__ import annotations

import asyncio

import pytest

from meshd.model.endpoints import (
    Add,
    DoesNotExist,
    PortInfo,
    Remove,
    Reset,
    ServiceInfo,
    ServiceKey,
    update_from_json,
    update_to_json,
)
from meshd.registry import PodRecord, Registry, Synced
from meshd.registry.addresses import AddressAllocator
from meshd.registry.drain import DrainCoordinator

WEB = ServiceKey("default", "web")
INFO = ServiceInfo(WEB, "10.213.128.9", (PortInfo("http", 80, "http"),))


def pod(name, *, ready=True, labels=None, ports=None, namespace="default", terminating=False):
    return PodRecord(namespace, name, labels or {"app": "web"}, f"10.213.0.{len(name)}",
                     ports if ports is not None else {"http": 8080}, ready=ready, reason="" if ready else "probe",
                     terminating=terminating)


def recorded():
    registry, updates = Registry(node="n1"), []
    registry.listen(updates.append)
    return registry, updates


def test_a_service_has_endpoints_for_matching_pods_with_the_named_port():
    registry, updates = recorded()
    registry.upsert_pod(pod("a"))
    registry.upsert_pod(pod("other", labels={"app": "db"}))
    registry.upsert_pod(pod("noport", ports={}))
    registry.upsert_pod(pod("elsewhere", namespace="prod"))
    registry.upsert_service(INFO, {"app": "web"})
    (reset,) = updates
    assert isinstance(reset, Reset) and [e.name for e in reset.endpoints] == ["a"]
    assert reset.endpoints[0].ports == {"http": 8080} and reset.endpoints[0].node == "n1"


def test_readiness_changes_are_re_added_and_terminating_pods_removed():
    registry, updates = recorded()
    registry.upsert_service(INFO, {"app": "web"})
    registry.upsert_pod(pod("a"))
    registry.upsert_pod(pod("a", ready=False))
    registry.upsert_pod(pod("a", ready=False))  # no change, no update
    registry.upsert_pod(pod("a", terminating=True))
    assert [type(u) for u in updates] == [Reset, Add, Add, Remove]
    assert updates[2].endpoints[0].ready is False and updates[2].endpoints[0].reason == "probe"
    assert registry.ready_endpoints(WEB) == ()


def test_deleting_a_service_says_it_does_not_exist_and_the_index_grows():
    registry, updates = recorded()
    registry.upsert_service(INFO, {"app": "web"})
    before = registry.index
    registry.delete_service(WEB)
    assert updates[-1] == DoesNotExist(WEB) and registry.index == before + 1
    assert isinstance(registry.snapshot(WEB), DoesNotExist)


async def test_watch_starts_with_the_current_state_then_follows_changes():
    registry = Registry()
    registry.upsert_service(INFO, {"app": "web"})
    stream = registry.watch(None)
    assert isinstance(await anext(stream), Reset)
    assert isinstance(await anext(stream), Synced)
    registry.upsert_pod(pod("a"))
    update = await asyncio.wait_for(anext(stream), 1)
    assert isinstance(update, Add) and update.endpoints[0].name == "a"
    await stream.aclose()


@pytest.mark.parametrize("update", [
    Reset(INFO, ()), Add(WEB, ()), Remove(WEB, ("a", "b")), DoesNotExist(WEB),
])
def test_updates_survive_their_json_form(update):
    assert update_from_json(update_to_json(update)) == update


def test_service_addresses_are_stable_and_distinct():
    pool = AddressAllocator("10.213.128.0/17")
    first = pool.allocate(WEB)
    again = AddressAllocator("10.213.128.0/17").allocate(WEB)
    other = pool.allocate(ServiceKey("default", "api"))
    assert first == again and first != other
    with pytest.raises(ValueError):
        pool.allocate(ServiceKey("default", "x"), requested=first)
    with pytest.raises(ValueError):
        pool.allocate(ServiceKey("default", "y"), requested="192.168.0.1")


async def test_draining_waits_for_every_connected_sidecar_that_follows_the_service():
    registry = Registry()
    drain = DrainCoordinator(registry)
    registry.upsert_service(INFO, {"app": "web"})
    registry.upsert_pod(pod("a"))
    drain.connect("s1", None)
    drain.connect("s2", WEB)
    drain.connect("s3", ServiceKey("default", "other"))
    registry.upsert_pod(pod("a", terminating=True))
    waiting = asyncio.ensure_future(drain.wait("default", "a"))
    drain.acknowledge("s1", WEB, "a")
    await asyncio.sleep(0.01)
    assert not waiting.done()
    drain.acknowledge("s2", WEB, "a")
    await asyncio.wait_for(waiting, 1)


async def test_draining_does_not_wait_without_sidecars_or_for_one_that_leaves():
    registry = Registry()
    drain = DrainCoordinator(registry)
    registry.upsert_service(INFO, {"app": "web"})
    registry.upsert_pod(pod("a"))
    registry.upsert_pod(pod("a", terminating=True))
    await asyncio.wait_for(drain.wait("default", "a"), 1)
    registry.upsert_pod(pod("b"))
    drain.connect("s1", None)
    registry.upsert_pod(pod("b", terminating=True))
    waiting = asyncio.ensure_future(drain.wait("default", "b"))
    await asyncio.sleep(0.01)
    drain.disconnect("s1")
    await asyncio.wait_for(waiting, 1)


def test_service_addresses_never_take_an_agent_resolver_address():
    """x.y.z.254 of the pool is where a second agent on the engine puts its pods' resolver; .0/.255 are avoided."""
    pool = AddressAllocator("10.213.128.0/22")  # small: 1,024 addresses, most of them taken below
    addresses = [pool.allocate(ServiceKey("default", f"svc-{i}")) for i in range(1000)]
    assert len(set(addresses)) == 1000
    assert not [a for a in addresses if a.rsplit(".", 1)[1] in ("0", "254", "255")]


async def test_drain_acks_are_kept_only_from_connected_sidecars_for_draining_endpoints():
    registry = Registry()
    drain = DrainCoordinator(registry, max_draining=3)
    registry.upsert_service(INFO, {"app": "web"})
    drain.connect("s1", WEB)
    assert not drain.acknowledge("s1", WEB, "a")  # nothing drains
    registry.upsert_pod(pod("a"))
    assert not drain.acknowledge("s1", WEB, "a")  # "a" is serving
    registry.upsert_pod(pod("a", terminating=True))
    assert not drain.acknowledge("stranger", WEB, "a")  # not connected
    assert not drain.acknowledge("s1", ServiceKey("default", "other"), "a")  # not a Service it left
    assert drain.acknowledge("s1", WEB, "a") and drain.acks == 1
    drain.disconnect("s1")
    assert drain.acks == 0
    for i in range(10):  # pods that left and were never stopped through wait(): the oldest are forgotten
        registry.upsert_pod(pod(f"p{i}"))
        registry.upsert_pod(pod(f"p{i}", terminating=True))
    assert drain.draining == 3
    registry.upsert_pod(pod("p9"))  # back in service: not draining any more
    assert drain.draining == 2
    await asyncio.sleep(0)

"""Service addresses kept in the store (meshd.controller.clusterip): pure decisions, table-tested, and one write
plan over an in-memory store."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from meshd.controller.clusterip import (
    AddressPlan,
    ClusterIPError,
    address_releases,
    choose_cluster_ip,
    ip_address_object,
    is_address_race,
    stored_addresses,
)
from meshd.controller.loop import Controller, NodeCapacity
from meshd.driver.process import ProcessDriver
from meshd.manifests.loader import load_documents
from meshd.model.endpoints import ServiceKey
from meshd.model.objects import Service
from meshd.registry import Registry
from meshd.store import AlreadyExists, Create, Delete, ObjectStore

POOL = ipaddress.IPv4Network("127.64.0.0/16")
WEB, API = ServiceKey("default", "web"), ServiceKey("default", "api")


def service(name: str = "web", cluster_ip: str | None = None) -> Service:
    ip = f"\n  clusterIP: {cluster_ip}" if cluster_ip else ""
    text = f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:{ip}\n  ports: [{{port: 80}}]\n"
    (obj,) = load_documents(text).objects
    assert isinstance(obj, Service)
    return obj


HASHED = choose_cluster_ip(WEB, requested=None, current=None, taken={}, pool=POOL)


@pytest.mark.parametrize(("requested", "current", "taken", "expected"), [
    (None, None, {}, HASHED),  # its hash's address: the same on every agent that sees the same store
    (None, None, {HASHED: WEB}, HASHED),  # its own entry does not count
    (None, "127.64.1.1", {}, "127.64.1.1"),  # kept once set
    ("127.64.1.1", "127.64.1.1", {"127.64.1.1": WEB}, "127.64.1.1"),  # re-applied as read
    ("127.64.9.9", None, {}, "127.64.9.9"),  # asked for, free
    ("127.64.9.9", None, {"127.64.9.9": WEB}, "127.64.9.9"),  # its own already
])
def test_the_address_a_service_gets(requested: str | None, current: str | None, taken: dict[str, ServiceKey],
                                    expected: str) -> None:
    assert choose_cluster_ip(WEB, requested=requested, current=current, taken=taken, pool=POOL) == expected


def test_a_taken_hash_address_moves_to_the_next_free_one() -> None:
    moved = choose_cluster_ip(WEB, requested=None, current=None, taken={HASHED: API}, pool=POOL)
    assert moved != HASHED and ipaddress.IPv4Address(moved) in POOL


@pytest.mark.parametrize(("requested", "current", "taken", "message"), [
    ("127.64.9.9", None, {"127.64.9.9": API}, 'Invalid value: "127.64.9.9": provided IP is already allocated'),
    ("10.0.0.1", None, {}, 'Invalid value: "10.0.0.1": provided IP is not in the valid range. '
                           "The range of valid IPs is 127.64.0.0/16"),
    ("127.64.9.9", "127.64.1.1", {}, 'Invalid value: "127.64.9.9": field is immutable'),
])
def test_addresses_a_service_may_not_have(requested: str, current: str | None, taken: dict[str, ServiceKey],
                                          message: str) -> None:
    with pytest.raises(ClusterIPError) as refused:
        choose_cluster_ip(WEB, requested=requested, current=current, taken=taken, pool=POOL)
    assert str(refused.value) == message


def test_a_full_range_is_an_error() -> None:
    tiny = ipaddress.IPv4Network("127.64.0.0/30")  # .0 reserved: three addresses
    taken = {str(a): API for a in tiny}
    with pytest.raises(ClusterIPError, match="range is full"):
        choose_cluster_ip(WEB, requested=None, current=None, taken=taken, pool=tiny)


def test_the_store_holds_services_addresses_and_ip_address_objects() -> None:
    objects = [
        {"kind": "Service", "metadata": {"namespace": "default", "name": "web"}, "spec": {"clusterIP": "127.64.0.1"}},
        {"kind": "Service", "metadata": {"namespace": "default", "name": "db"}, "spec": {"clusterIP": "None"}},
        {"kind": "Service", "metadata": {"namespace": "default", "name": "old"}, "spec": {}},
        ip_address_object("127.64.0.2", API),
        {"kind": "Deployment", "metadata": {"namespace": "default", "name": "web"}, "spec": {"clusterIP": "x"}},
    ]
    assert stored_addresses(objects) == {"127.64.0.1": WEB, "127.64.0.2": API}


def test_releases_are_the_owners_ip_addresses_but_the_kept_one() -> None:
    held = [ip_address_object("127.64.0.1", WEB), ip_address_object("127.64.0.2", WEB),
            ip_address_object("127.64.0.3", API)]
    assert address_releases(held, [WEB]) == [Delete("IPAddress", "", "127.64.0.1"), Delete("IPAddress", "", "127.64.0.2")]
    assert address_releases(held, [WEB], keep={WEB: "127.64.0.2"}) == [Delete("IPAddress", "", "127.64.0.1")]


def test_a_lost_address_race_is_told_from_an_object_that_exists() -> None:
    assert is_address_race(AlreadyExists('IPAddress "127.64.0.1" already exists in namespace ""'))
    assert not is_address_race(AlreadyExists('Service "web" already exists in namespace "default"'))


async def test_a_plan_stores_the_address_with_the_service_and_sees_what_others_hold() -> None:
    store = ObjectStore()
    other = ip_address_object(HASHED, API)  # another agent's Service holds web's hash address
    await store.transaction([Create(other)])
    plan = AddressPlan(store, POOL)
    web = plan.assign(service("web"), current=None)
    assert web.cluster_ip and web.cluster_ip != HASHED and web.raw["spec"]["clusterIP"] == web.cluster_ip
    with pytest.raises(ClusterIPError, match="already allocated"):
        plan.assign(service("db", web.cluster_ip), current=None)  # taken earlier in the same write
    (create,) = plan.operations()
    assert isinstance(create, Create) and create.obj["metadata"]["name"] == web.cluster_ip
    await store.transaction([create])
    again = AddressPlan(store, POOL)
    assert again.assign(service("web"), current=web.cluster_ip).cluster_ip == web.cluster_ip
    assert again.operations() == []  # held already
    headless = AddressPlan(store, POOL)
    assert headless.assign(service("web", "None"), current=None).cluster_ip is None
    assert headless.operations() == [Delete("IPAddress", "", web.cluster_ip)]


class RacedStore(ObjectStore):
    """Another agent takes the address this write chose just before it lands (once)."""

    def __init__(self) -> None:
        super().__init__()
        self.raced = False

    async def transaction(self, operations):  # type: ignore[no-untyped-def]
        chosen = [op.obj["metadata"]["name"] for op in operations
                  if isinstance(op, Create) and op.obj["kind"] == "IPAddress"]
        if chosen and not self.raced:
            self.raced = True
            await super().transaction([Create(ip_address_object(chosen[0], API))])
        return await super().transaction(operations)


async def test_a_controller_that_loses_an_address_race_chooses_again_and_stores_it(tmp_path: Path) -> None:
    store = RacedStore()
    controller = Controller(driver=ProcessDriver(agent_id="clusterip", state_dir=tmp_path / "process"),
                            registry=Registry(node="test"), state_dir=tmp_path / "state", agent_id="clusterip",
                            service_pool=str(POOL), capacity=NodeCapacity(cpu_millicores=1000, memory_bytes=1 << 30))
    controller.use_store(store)  # (an empty store is falsy: Controller(store=...) would not take it)
    await controller.apply("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: 80}]\n")
    stored = store.get("Service", "default", "web")
    assert store.raced and stored is not None
    address = stored["spec"]["clusterIP"]
    assert address != HASHED  # the first choice went to the other writer
    held = store.get("IPAddress", "", address)
    assert held is not None and held["spec"]["parentRef"]["name"] == "web"
    assert controller.registry.service(WEB).address == address  # published as stored
    await controller.delete("Service", "default", "web")
    assert store.get("IPAddress", "", address) is None  # released with the Service

"""The cluster's one Service range (meshd.cluster.servicerange): what a flag may say, which range an agent uses
(the cluster's, written once by its first agent), which link addresses are stale, and where the process driver
needs no address on lo. Decisions table-tested; the write over an in-memory store."""

from __future__ import annotations

import ipaddress

import pytest

from meshd.cluster.servicerange import (
    SERVICE_CIDR_KIND,
    SERVICE_CIDR_NAME,
    ServiceRangeError,
    cluster_service_range,
    decide_range,
    driver_problem,
    ensure_service_range,
    parse_service_range,
    service_cidr_object,
    stale_range_addresses,
)
from meshd.driver.linkaddresses import LoopbackServiceAddresses
from meshd.hostslots import CLUSTER_SERVICE_POOL, slot_ranges
from meshd.store import Create, ObjectStore

net = ipaddress.IPv4Network
DEFAULT = net("10.96.0.0/17")


@pytest.mark.parametrize(("text", "network"), [
    ("10.96.0.0/12", "10.96.0.0/12"), (" 10.100.0.0/16", "10.100.0.0/16"), ("192.168.77.0/24", "192.168.77.0/24"),
    ("127.96.0.0/16", "127.96.0.0/16"), ("172.20.0.0/28", "172.20.0.0/28"),
])
def test_a_usable_range(text: str, network: str) -> None:
    assert parse_service_range(text) == net(network)


@pytest.mark.parametrize(("text", "why"), [
    ("10.96.0.1/16", "not an IPv4 CIDR"), ("fd00::/108", "not an IPv4 CIDR"), ("web", "not an IPv4 CIDR"),
    ("10.0.0.0/8", "/12 to /28"), ("10.96.0.0/30", "/12 to /28"),
    ("10.213.4.0/24", "Docker driver's pod network"), ("10.208.0.0/12", "Docker driver's pod network"),
    ("8.8.0.0/16", "private range"), ("169.254.0.0/16", "private range"),
])
def test_a_range_refused_says_why(text: str, why: str) -> None:
    with pytest.raises(ServiceRangeError, match=why):
        parse_service_range(text)


@pytest.mark.parametrize(("stored", "wanted", "used", "write"), [
    (None, None, DEFAULT, True),  # the first agent, no flag: the default
    (None, net("10.100.0.0/24"), net("10.100.0.0/24"), True),  # the first agent's flag decides
    ("10.100.0.0/24", None, net("10.100.0.0/24"), False),  # a joining agent takes the cluster's
    ("10.100.0.0/24", net("10.100.0.0/24"), net("10.100.0.0/24"), False),  # the same flag again: fine
])
def test_the_cluster_decides_once(stored: str | None, wanted: ipaddress.IPv4Network | None,
                                  used: ipaddress.IPv4Network, write: bool) -> None:
    obj = service_cidr_object(net(stored)) if stored else None
    assert decide_range(obj, wanted=wanted, default=DEFAULT) == (used, write)


def test_a_flag_that_disagrees_with_the_cluster_is_refused() -> None:
    with pytest.raises(ServiceRangeError, match=r"the cluster's Service range is 10.100.0.0/24"):
        decide_range(service_cidr_object(net("10.100.0.0/24")), wanted=net("10.101.0.0/24"), default=DEFAULT)


def test_a_damaged_stored_range_is_an_error_not_a_crash() -> None:
    damaged = {"kind": SERVICE_CIDR_KIND, "metadata": {"name": SERVICE_CIDR_NAME}, "spec": {"cidrs": ["x", "fd::/64"]}}
    with pytest.raises(ServiceRangeError, match="holds no IPv4 range"):
        decide_range(damaged, wanted=None, default=DEFAULT)


async def test_the_first_write_wins_and_later_agents_read_it() -> None:
    store = ObjectStore()
    first = await ensure_service_range(store, wanted=net("10.100.0.0/24"), default=DEFAULT)
    assert first == net("10.100.0.0/24")
    assert await ensure_service_range(store, wanted=None, default=net("10.96.128.0/17")) == first
    stored = store.get(SERVICE_CIDR_KIND, "", SERVICE_CIDR_NAME)
    assert stored is not None and stored["spec"]["cidrs"] == ["10.100.0.0/24"]
    assert stored["apiVersion"] == "networking.k8s.io/v1"


async def test_an_agent_that_loses_the_race_takes_the_winners_range() -> None:
    store = ObjectStore()

    class Racing:  # another agent writes its range between our read and our write
        def get(self, *key: str) -> object:
            return store.get(*key)

        async def transaction(self, operations: list[object]) -> object:
            if store.get(SERVICE_CIDR_KIND, "", SERVICE_CIDR_NAME) is None:
                await store.transaction([Create(service_cidr_object(net("10.99.0.0/16")))])
            return await store.transaction(operations)  # type: ignore[arg-type]

    assert await ensure_service_range(Racing(), wanted=None, default=DEFAULT) == net("10.99.0.0/16")  # type: ignore[arg-type]


async def test_a_docker_node_joining_a_loopback_range_says_it_cannot_serve_it(
        caplog: pytest.LogCaptureFixture) -> None:
    store = ObjectStore()
    assert await cluster_service_range(store, flag="127.96.0.0/16", default=str(DEFAULT), driver="process") == net(
        "127.96.0.0/16")
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert await cluster_service_range(store, flag=None, default="10.96.128.0/17", driver="docker") == net(
        "127.96.0.0/16")
    assert any("cannot reach Service addresses" in r.getMessage() for r in caplog.records)


def test_docker_nodes_cannot_serve_a_loopback_range() -> None:
    assert "containers on this Docker node cannot reach" in str(driver_problem(net("127.96.0.0/16"), "docker"))
    assert driver_problem(net("127.96.0.0/16"), "process") is None
    assert driver_problem(DEFAULT, "docker") is None and driver_problem(DEFAULT, "process") is None


def test_stale_addresses_are_the_ranges_that_nothing_owns_or_serves() -> None:
    present = ["10.96.0.5", "10.96.0.6", "10.96.0.7", "10.213.128.5", "10.97.0.1"]
    assert stale_range_addresses(present, DEFAULT, mine={"10.96.0.5"}, listening=frozenset({"10.96.0.6"})) == [
        "10.96.0.7"]


def test_every_slot_has_its_own_default_cluster_range_in_kubernetes_default() -> None:
    ranges = [net(slot_ranges(s).cluster_services) for s in range(32)]
    assert ranges[0] == DEFAULT and all(r.subnet_of(net(CLUSTER_SERVICE_POOL)) for r in ranges)
    assert all(parse_service_range(str(r)) == r for r in ranges)  # every default passes the flag's checks


@pytest.mark.parametrize(("address", "local"), [("127.64.0.9", True), ("127.213.3.4", True), ("10.96.0.9", False)])
def test_the_process_driver_puts_only_non_loopback_addresses_on_lo(address: str, local: bool) -> None:
    assert LoopbackServiceAddresses.local_already(address) is local

"""trafficDistribution: PreferClose in the sidecar: the endpoints on its own node while any is available, else
all; table tests on the decision and on the ServiceTable the proxy picks from."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from meshd.model.endpoints import Add, Endpoint, PortInfo, Reset, ServiceInfo, ServiceKey, update_from_json, update_to_json
from sidecar.outlier import OutlierPolicy
from sidecar.services import OUT_5XX, ServiceTable
from sidecar.topology import balanced

KEY = ServiceKey("default", "web")
CLOSE = ServiceInfo(KEY, "127.64.0.9", (PortInfo("http", 80, "http"),), traffic_distribution="PreferClose")
ANY = ServiceInfo(KEY, "127.64.0.9", (PortInfo("http", 80, "http"),))


@dataclass(frozen=True)
class At:
    name: str
    node: str


A1, A2, B1 = At("a1", "a"), At("a2", "a"), At("b1", "b")


@pytest.mark.parametrize(("available", "distribution", "node", "expected"), [
    ([A1, B1, A2], "PreferClose", "a", [A1, A2]),  # the local ones only
    ([B1], "PreferClose", "a", [B1]),  # none local: all
    ([], "PreferClose", "a", []),
    ([A1, B1], None, "a", [A1, B1]),  # no preference asked
    ([A1, B1], "PreferClose", "", [A1, B1]),  # the sidecar does not know its node
    ([A1, B1], "PreferClose", "c", [A1, B1]),
])
def test_what_a_sidecar_balances_over(available: list[At], distribution: str | None, node: str,
                                      expected: list[At]) -> None:
    assert balanced(available, distribution=distribution, node=node) == expected


def ep(name: str, node: str, ready: bool = True) -> Endpoint:
    return Endpoint(name=name, address="127.213.0.1", ports={"http": 8080}, ready=ready, node=node)


def picks(table: ServiceTable, n: int = 40) -> set[str]:
    state = table.services[KEY]
    found = set()
    for _ in range(n):
        chosen = state.pick(None)
        assert chosen is not None
        found.add(chosen.name)
    return found


def test_the_sidecar_picks_local_endpoints_while_one_is_ready_then_every_ready_one() -> None:
    table = ServiceTable(rng=random.Random(1), node="a")
    table.apply(Reset(CLOSE, (ep("a1", "a"), ep("a2", "a"), ep("b1", "b"), ep("b2", "b"))))
    assert picks(table) == {"a1", "a2"}
    table.apply(Add(KEY, (ep("a1", "a", ready=False), ep("a2", "a", ready=False))))
    assert picks(table) == {"b1", "b2"}  # nothing local is ready: every ready endpoint
    table.apply(Add(KEY, (ep("a2", "a"),)))
    assert picks(table) == {"a2"}


def test_without_prefer_close_every_node_is_balanced() -> None:
    table = ServiceTable(rng=random.Random(1), node="a")
    table.apply(Reset(ANY, (ep("a1", "a"), ep("b1", "b"))))
    assert picks(table) == {"a1", "b1"}
    table.apply(Reset(CLOSE, (ep("a1", "a"), ep("b1", "b"))))  # the Service asks for it later
    assert picks(table) == {"a1"}


def test_an_ejected_local_endpoint_falls_back_to_the_other_nodes() -> None:
    clock = [0.0]
    table = ServiceTable(rng=random.Random(1), node="a", clock=lambda: clock[0],
                         outlier_policy=OutlierPolicy(consecutive=1, max_ejected_fraction=1.0))
    table.apply(Reset(CLOSE, (ep("a1", "a"), ep("b1", "b"))))
    state = table.services[KEY]
    local = state.pick(None)
    assert local is not None and local.name == "a1"
    state.record(local, OUT_5XX)
    assert picks(table) == {"b1"}


def test_the_preference_crosses_the_wire_and_old_peers_read_without_it() -> None:
    assert update_from_json(update_to_json(Reset(CLOSE, ()))) == Reset(CLOSE, ())
    wire = update_to_json(Reset(ANY, ()))
    assert "trafficDistribution" not in wire["service"]  # an older sidecar reads what it always read

"""The scheduler's scores: each plugin alone (0..100 over the feasible nodes), then the choices they add up to."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest

from meshd.scheduler import Scheduler, Taint, schedule
from meshd.scheduler.filters import Cycle
from meshd.scheduler.scores import (
    balanced_allocation,
    inter_pod_affinity,
    least_allocated,
    node_affinity,
    normalize,
    taint_toleration,
    topology_spread,
)
from tests.scheduler.helpers import anti, node, pod, spread

WEB = {"app": "web"}


def plugin_scores(plugin, incoming, nodes, placed=()):  # type: ignore[no-untyped-def]
    state = Scheduler(nodes, placed)
    return plugin(Cycle(state, incoming), state.nodes)


@pytest.mark.parametrize(("scores", "reverse", "expected"), [
    ({"a": 0, "b": 0}, False, {"a": 0, "b": 0}),
    ({"a": 0, "b": 0}, True, {"a": 100, "b": 100}),
    ({"a": 1, "b": 3}, False, {"a": 33, "b": 100}),
    ({"a": 1, "b": 2}, True, {"a": 50, "b": 0}),
])
def test_default_normalize(scores, reverse, expected) -> None:  # type: ignore[no-untyped-def]
    assert normalize(scores, reverse=reverse) == expected


def test_taint_toleration_prefers_fewer_untolerated_prefer_no_schedule_taints() -> None:
    soft = Taint("spot", "yes", "PreferNoSchedule")
    nodes = [node("a", taints=(soft, Taint("x", "", "PreferNoSchedule"))), node("b", taints=(soft,)), node("c")]
    assert plugin_scores(taint_toleration, pod("p"), nodes) == {"a": 0, "b": 50, "c": 100}
    tolerant = pod("p", tolerations=[{"key": "spot", "operator": "Exists", "effect": "PreferNoSchedule"}])
    assert plugin_scores(taint_toleration, tolerant, nodes) == {"a": 0, "b": 100, "c": 100}
    assert schedule(pod("p"), nodes, []).node == "c"
    assert schedule(pod("p"), nodes[:2], []).node == "b"


def test_preferred_node_affinity_adds_the_weights_of_the_terms_matched() -> None:
    affinity = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 80, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
        {"weight": 20, "preference": {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}}]}}
    nodes = [node("a", labels={"zone": "1"}), node("b", labels={"disk": "ssd"}),
             node("c", labels={"disk": "ssd", "zone": "2"})]
    assert plugin_scores(node_affinity, pod("p", affinity=affinity), nodes) == {"a": 20, "b": 80, "c": 100}
    assert schedule(pod("p", affinity=affinity), nodes, []).node == "c"


def test_least_allocated_and_balanced_allocation() -> None:
    nodes = [node("a", cpu=4000, memory=4 << 30), node("b", cpu=4000, memory=4 << 30)]
    placed = [pod("q", cpu="2", memory="1Gi", node="a")]
    incoming = pod("p", cpu="1", memory="1Gi")
    # a: cpu (4000-3000)/4000 = 25, memory 2Gi free of 4 = 50 -> 37; b: 75 and 75 -> 75
    assert plugin_scores(least_allocated, incoming, nodes, placed) == {"a": 37, "b": 75}
    # a: cpu 3/4, memory 2/4 -> std 0.125 -> 87; b: 1/4 and 1/4 -> 100
    assert plugin_scores(balanced_allocation, incoming, nodes, placed) == {"a": 87, "b": 100}
    assert schedule(incoming, nodes, placed).node == "b"
    # a pod asking for nothing counts 100m and 200Mi
    assert plugin_scores(least_allocated, pod("p"), [node("a", cpu=1000, memory=400 << 20)]) == {"a": 70}


def test_preferred_pod_affinity_and_anti_affinity() -> None:
    near_cache = {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "cache"}},
                                           "topologyKey": "kubernetes.io/hostname"}}]}}
    nodes = [node("a"), node("b"), node("c")]
    placed = [pod("c1", {"app": "cache"}, node="b"), pod("c2", {"app": "cache"}, node="b"),
              pod("c3", {"app": "cache"}, node="c")]
    assert plugin_scores(inter_pod_affinity, pod("p", affinity=near_cache), nodes, placed) == {
        "a": 0, "b": 100, "c": 50}
    assert schedule(pod("p", affinity=near_cache), nodes, placed).node == "b"
    away = anti("cache", preferred=True)
    assert plugin_scores(inter_pod_affinity, pod("p", affinity=away), nodes, placed) == {"a": 100, "b": 0, "c": 50}
    # symmetric: a placed pod's preferred anti-affinity pushes away the pods it matches
    shy = [pod("s", {"app": "shy"}, node="a", affinity=anti("web", preferred=True))]
    assert plugin_scores(inter_pod_affinity, pod("p", WEB), nodes[:2], shy) == {"a": 0, "b": 100}
    assert schedule(pod("p", WEB), nodes[:2], shy).node == "b"
    # nothing to say: every node 0
    assert plugin_scores(inter_pod_affinity, pod("p"), nodes, placed) == {}


def test_schedule_anyway_spread_prefers_the_emptier_domain() -> None:
    nodes = [node("a", zone="z1"), node("b", zone="z1"), node("c", zone="z2")]
    placed = [pod("w1", WEB, node="a"), pod("w2", WEB, node="b")]
    incoming = pod("p", WEB, topologySpreadConstraints=spread("web", "topology.kubernetes.io/zone",
                                                              when="ScheduleAnyway"))
    scores = plugin_scores(topology_spread, incoming, nodes, placed)
    assert scores["c"] == 100 and scores["a"] == scores["b"] < 100
    assert schedule(incoming, nodes, placed).node == "c"
    # ScheduleAnyway never filters: a full domain still takes the pod
    assert schedule(incoming, nodes[:2], placed).node in ("a", "b")


def test_system_default_spreading_counts_the_controllers_pods() -> None:
    nodes = [node("a"), node("b")]
    placed = [pod("w1", WEB, node="a")]
    # count * log(2 nodes + 2) + maxSkew 3 - 1: a 3.39 -> 3, b 2; reversed: 100 * (3 + 2 - s) / 3
    assert plugin_scores(topology_spread, pod("p", WEB), nodes, placed) == {"a": 66, "b": 100}
    # a pod with no labels and no selector is not spread; one with spread_selector counts those pods
    assert plugin_scores(topology_spread, pod("p"), nodes, placed) == {}
    other = replace(pod("p", {"app": "web", "pod-template-hash": "x1"}), spread_selector=WEB)
    assert plugin_scores(topology_spread, other, nodes, placed) == {"a": 66, "b": 100}


def place_all(replicas: int, nodes, **fields):  # type: ignore[no-untyped-def]
    state = Scheduler(nodes)
    return [state.bind(pod(f"web-{i}", WEB, **fields)).node for i in range(replicas)]


def test_six_replicas_on_three_equal_nodes_land_two_per_node() -> None:
    nodes = [node("a"), node("b"), node("c")]
    for fields in ({}, {"affinity": anti("web", preferred=True)},
                   {"topologySpreadConstraints": spread("web")}):
        placed = place_all(6, nodes, **fields)
        assert sorted(placed) == ["a", "a", "b", "b", "c", "c"], fields


def test_required_anti_affinity_places_three_then_the_fourth_waits() -> None:
    nodes = [node("a"), node("b"), node("c")]
    state = Scheduler(nodes)
    placed = [state.bind(pod(f"web-{i}", WEB, affinity=anti("web"))) for i in range(4)]
    assert [p.node for p in placed] == ["a", "b", "c", None]
    assert placed[3].message == "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."


def test_incremental_scheduler_agrees_with_schedule_from_scratch() -> None:
    rng = random.Random(15)
    nodes = [node("a", zone="z1", cpu=8000), node("b", zone="z1", cpu=8000), node("c", zone="z2", cpu=8000)]
    kinds = [{}, {"affinity": anti("api")}, {"affinity": anti("web", preferred=True)},
             {"topologySpreadConstraints": spread("web", "topology.kubernetes.io/zone", skew=2)}]
    state = Scheduler(nodes)
    placed: list = []
    for i in range(60):
        app = rng.choice(["web", "api", "db"])
        incoming = pod(f"p{i}", {"app": app}, cpu=f"{rng.choice([100, 250, 500])}m", **rng.choice(kinds))
        fresh = Scheduler(nodes, placed).place(incoming)
        kept = state.place(incoming)
        reused = schedule(incoming, nodes, placed)
        assert (kept.node, kept.message) == (fresh.node, fresh.message) == (reused.node, reused.message)
        assert kept.scores == fresh.scores == reused.scores
        if kept.node:
            bound = replace(incoming, node=kept.node)
            state.add(bound)
            placed.append(bound)
        if i % 7 == 6:  # pods go away too
            gone = placed.pop(rng.randrange(len(placed)))
            state.remove(gone)
        if i % 11 == 10:  # or are replaced (same name, other labels)
            j = rng.randrange(len(placed))
            placed[j] = replace(placed[j], labels={"app": "db"})
            state.add(placed[j])


def test_the_bench_workload_places_the_same_both_ways() -> None:
    from bench.scheduler_bench import fresh, incremental, nodes_of, reusing, workload

    pods, nodes = workload(90), nodes_of(3)
    kept, scratch, reused = incremental(pods, nodes), fresh(pods, nodes), reusing(pods, nodes)
    assert [p.node for p in kept] == [p.node for p in scratch] == [p.node for p in reused]
    assert all(p.node for p in kept)
    per_app: dict[str, Counter] = {}
    for placed, placement in zip(pods, kept):
        per_app.setdefault(placed.labels["app"], Counter())[placement.node] += 1
    for app, counts in per_app.items():
        if app.startswith("anti-"):
            assert sorted(counts.values()) == [1, 1, 1], app  # required anti-affinity: one per node
        if app.startswith("spread-"):
            assert len(counts) == 3 and max(counts.values()) - min(counts.values()) <= 1, app  # maxSkew 1

"""Nodes' readiness from their Lease, and Lease renewal, as the kubelet and the node lifecycle controller do."""

from __future__ import annotations

import pytest

from meshd.cluster.nodes import is_ready, lease, micro_time, parse_time, renewed, with_readiness

NODE = {"kind": "Node", "metadata": {"name": "n1", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}]}}


@pytest.mark.parametrize(("renewed_ago", "grace", "ready"), [
    (0.0, 6.0, True),
    (5.9, 6.0, True),
    (6.0, 6.0, True),
    (6.1, 6.0, False),
    (100.0, 6.0, False),
])
def test_ready_while_the_lease_is_younger_than_the_grace(renewed_ago: float, grace: float, ready: bool) -> None:
    now = 1_800_000_000.0
    node_lease = lease("kube-node-lease", "n1", holder="n1", duration=6, renewed=now - renewed_ago)
    shown = with_readiness(NODE, node_lease, now=now, grace=grace)
    assert is_ready(shown) is ready
    types = [c["type"] for c in shown["status"]["conditions"]]
    assert sorted(types) == ["MemoryPressure", "Ready"]  # one Ready condition, the others kept
    if not ready:
        condition = next(c for c in shown["status"]["conditions"] if c["type"] == "Ready")
        assert condition["status"] == "Unknown" and "stopped renewing its lease" in condition["message"]
    assert is_ready(NODE)  # the stored node is left as it was


def test_a_node_without_a_lease_is_not_ready() -> None:
    shown = with_readiness(NODE, None, now=1e9, grace=6)
    assert not is_ready(shown) and "never renewed" in shown["status"]["conditions"][-1]["message"]


def test_micro_time_round_trips_and_bad_times_are_none() -> None:
    assert parse_time(micro_time(1_800_000_000.25)) == pytest.approx(1_800_000_000.25)
    assert parse_time("2026-01-01T00:00:00Z") is not None
    assert parse_time("yesterday") is None and parse_time(None) is None


def test_renewing_keeps_acquire_time_and_a_new_holder_counts_a_transition() -> None:
    first = lease("kube-system", "meshd-controller", holder="a", duration=5, renewed=100.0)
    stored = {**first, "metadata": {**first["metadata"], "resourceVersion": "7", "uid": "u"}}
    again = renewed(stored, lease("kube-system", "meshd-controller", holder="a", duration=5, renewed=200.0))
    assert again["spec"]["acquireTime"] == micro_time(100.0) and again["spec"]["renewTime"] == micro_time(200.0)
    assert again["spec"]["leaseTransitions"] == 0 and again["metadata"]["resourceVersion"] == "7"
    taken = renewed(stored, lease("kube-system", "meshd-controller", holder="b", duration=5, renewed=300.0))
    assert taken["spec"]["acquireTime"] == micro_time(300.0) and taken["spec"]["leaseTransitions"] == 1
    assert renewed(None, first) is first

"""Volumes of one node in a cluster (meshd.controller.volumes.nodelocal and the binder's `consumer_nodes`): the
PersistentVolume's nodeAffinity read back, the nodes a pod fits for its bound claims, where a claim is provisioned,
and the scheduler's volume node affinity filter."""

from __future__ import annotations

from typing import Any

import pytest

from meshd.controller.volumes.binding import Provision, plan
from meshd.controller.volumes.nodelocal import consumer_nodes, node_affinity, pod_volume_nodes, volume_nodes
from meshd.manifests import load_objects
from meshd.model.objects import PersistentVolume, PersistentVolumeClaim, PodSpec
from meshd.scheduler import NodeInfo, PodInfo, Scheduler
from tests.unit.test_storage_binding import LOCAL, claim

HOST = "kubernetes.io/hostname"


def expression(key: str, values: list[str], operator: str = "In") -> dict[str, Any]:
    return {"key": key, "operator": operator, "values": values}


@pytest.mark.parametrize(("affinity", "nodes"), [
    (None, None),
    (node_affinity("host1"), {"host1"}),
    ({"required": {"nodeSelectorTerms": [{"matchExpressions": [expression(HOST, ["a", "b"])]},
                                         {"matchFields": [expression("metadata.name", ["c"])]}]}}, {"a", "b", "c"}),
    ({"required": {"nodeSelectorTerms": [{"matchExpressions": [expression(HOST, ["a", "b"]),
                                                               expression(HOST, ["b", "c"])]}]}}, {"b"}),
    ({"required": {"nodeSelectorTerms": [{"matchExpressions": [expression("zone", ["z1"])]}]}}, None),
    ({"required": {"nodeSelectorTerms": [{"matchExpressions": [expression(HOST, ["a"], "NotIn")]}]}}, None),
    ({"required": {"nodeSelectorTerms": []}}, None),
])
def test_the_nodes_a_volume_names(affinity: dict[str, Any] | None, nodes: set[str] | None) -> None:
    raw = {"spec": {"nodeAffinity": affinity}} if affinity is not None else {"spec": {}}
    assert volume_nodes(raw) == (frozenset(nodes) if nodes is not None else None)


def pv(name: str, node: str | None) -> PersistentVolume:
    spec: dict[str, Any] = {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                            "csi": {"driver": "meshd.io/local", "volumeHandle": name}}
    if node is not None:
        spec["nodeAffinity"] = node_affinity(node)
    (obj,) = load_objects([{"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
                            "spec": spec}]).objects
    assert isinstance(obj, PersistentVolume)
    return obj


def pod_spec(*claims: str) -> PodSpec:
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "busybox"}],
        "volumes": [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}} for i, c in enumerate(claims)]}}
    (obj,) = load_objects([doc]).objects
    return obj.spec  # type: ignore[attr-defined]


def bound(name: str, volume: str) -> PersistentVolumeClaim:
    return claim(name, volumeName=volume).obj


CLAIMS = {("default", "a"): bound("a", "pv-a"), ("default", "b"): bound("b", "pv-b"),
          ("default", "anywhere"): bound("anywhere", "pv-any"), ("default", "pending"): claim("pending").obj}
VOLUMES = {"pv-a": pv("pv-a", "host1"), "pv-b": pv("pv-b", "host2"), "pv-any": pv("pv-any", None)}


@pytest.mark.parametrize(("claims", "nodes"), [
    ((), None),
    (("a",), {"host1"}),
    (("a", "anywhere", "pending", "missing"), {"host1"}),  # only bound claims with a node narrow it
    (("a", "b"), set()),  # volumes on two nodes: no node fits
    (("anywhere",), None),
])
def test_the_nodes_a_pod_fits_for_its_bound_claims(claims: tuple[str, ...], nodes: set[str] | None) -> None:
    found = pod_volume_nodes("default", pod_spec(*claims), CLAIMS.get, VOLUMES.get)
    assert found == (frozenset(nodes) if nodes is not None else None)


def test_a_claim_is_provisioned_on_the_node_of_its_first_consumer_bound_to_one() -> None:
    pods = [("default", "", pod_spec("data"), False),  # not placed yet
            ("default", "host2", pod_spec("data"), True),  # being deleted
            ("default", "host1", pod_spec("data"), False), ("default", "host3", pod_spec("data"), False),
            ("other", "host3", pod_spec("data"), False)]
    nodes = consumer_nodes(pods)
    assert nodes == {("default", "data"): "host1", ("other", "data"): "host3"}
    c = claim()
    assert plan([c], {}, LOCAL, consumer_nodes=nodes) == [Provision(("default", "data"), "pvc-u1", "local", "Delete",
                                                                    "host1")]
    assert plan([c], {}, LOCAL, consumer_nodes={}) == []  # in a cluster: waits for a consumer on a node
    assert plan([c], {}, LOCAL) == [Provision(("default", "data"), "pvc-u1", "local", "Delete")]  # one node


def test_the_scheduler_keeps_a_pod_on_the_node_of_its_volume() -> None:
    nodes = [NodeInfo("host0"), NodeInfo("host1"), NodeInfo("host2")]
    scheduler = Scheduler(nodes)
    spec = pod_spec("a")
    assert scheduler.place(PodInfo("default", "p", {}, spec, volume_nodes=frozenset({"host1"}))).node == "host1"
    refused = scheduler.place(PodInfo("default", "p", {}, spec, volume_nodes=frozenset()))
    assert refused.node is None
    assert refused.message == "0/3 nodes are available: 3 node(s) had volume node affinity conflict."
    assert scheduler.place(PodInfo("default", "p", {}, spec)).node == "host0"  # no volume ties it

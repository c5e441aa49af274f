"""The leader's writes of Pod objects (meshd.cluster.pods) on a memory store: a new pod is bound to a Ready node
by the scheduler and written; one that fits nowhere is written Pending and Unschedulable, and bound when a node
comes; a deletion goes through the node's kubelet (deletionTimestamp) unless no Ready kubelet could confirm it;
a node NotReady beyond the eviction timeout loses its pods (not a DaemonSet's); the view follows store events."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from meshd.cluster.nodes import NODE_LEASE_NAMESPACE, lease
from meshd.cluster.pods import ClusterPods
from meshd.controller.events import EventLog
from meshd.controller.pod import PodIdentity
from meshd.manifests import load_objects
from meshd.store import ObjectStore

NOW = 1_800_000_000.0


def spec(cpu: str = "100m", **extra: Any) -> Any:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
                "spec": {"containers": [{"name": "main", "image": "busybox",
                                         "resources": {"requests": {"cpu": cpu}}}], **extra}}
    return load_objects([manifest], source="test").objects[0].spec


async def cluster(**ages: float) -> tuple[ClusterPods, ObjectStore, Any]:
    """A memory store with a Node per keyword, its Lease renewed that many seconds ago."""
    store = ObjectStore()
    for name, age in ages.items():
        await store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                            "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "110"}}})
        await store.create(lease(NODE_LEASE_NAMESPACE, name, holder=name, duration=3, renewed=NOW - age))
    controller = SimpleNamespace(events=EventLog(clock=lambda: NOW), replicasets={}, objects={}, leading=True,
                                 kick=lambda: None)
    pods = ClusterPods(controller, store, "n1", node_grace=3.0, eviction_timeout=5.0,  # type: ignore[arg-type]
                       clock=lambda: NOW)
    return pods, store, controller


def identity(name: str, kind: str = "ReplicaSet") -> PodIdentity:
    return PodIdentity("default", name, kind, "web", "web-h" if kind == "ReplicaSet" else "", "h")


def reasons(controller: Any, name: str) -> list[str]:
    return [e.reason for e in controller.events.of("Pod", "default", name)]


async def test_new_pods_are_bound_to_the_ready_nodes_running_the_fewest_and_written() -> None:
    pods, store, controller = await cluster(n1=0.0, n2=1.0, n3=60.0)
    for name in ("a", "b", "c", "d"):
        pods.create(identity(name), spec(), {"app": "web"}, {}, created=NOW)
    await pods.writer.drain()
    written = {o["metadata"]["name"]: o for o in store.list("Pod")}
    assert sorted(o["spec"]["nodeName"] for o in written.values()) == ["n1", "n1", "n2", "n2"]  # n3 is NotReady
    assert written["a"]["metadata"]["ownerReferences"][0]["name"] == "web-h"
    assert written["a"]["metadata"]["labels"] == {"app": "web"}
    assert written["a"]["status"]["conditions"] == [{"type": "PodScheduled", "status": "True"}]
    assert reasons(controller, "a") == ["Scheduled"]
    assert pods.get("default", "a").scheduled and not pods.get("default", "a").ready


async def test_a_pod_that_fits_nowhere_waits_pending_and_is_bound_when_a_node_comes() -> None:
    pods, store, controller = await cluster(n1=60.0)
    pods.create(identity("a"), spec(), {}, {}, created=NOW)
    await pods.writer.drain()
    (obj,) = store.list("Pod")
    assert "nodeName" not in obj["spec"] and obj["status"]["phase"] == "Pending"
    assert obj["status"]["conditions"] == [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                            "message": "0/1 nodes are available: 1 node(s) had untolerated taint "
                                                           "{node.kubernetes.io/unreachable: }."}]
    assert reasons(controller, "a") == ["FailedScheduling"]
    pods.load()
    pods.tick()  # nothing changed: no second event, no write
    assert reasons(controller, "a") == ["FailedScheduling"] and not pods.writer.pending((("default", "a"), "bind"))
    old = store.get("Lease", NODE_LEASE_NAMESPACE, "n1")
    await store.update({**old, "spec": {**old["spec"], "renewTime": lease(
        NODE_LEASE_NAMESPACE, "n1", holder="n1", duration=3, renewed=NOW)["spec"]["renewTime"]}})
    pods.tick()
    await pods.writer.drain()
    assert store.get("Pod", "default", "a")["spec"]["nodeName"] == "n1"
    assert reasons(controller, "a") == ["FailedScheduling", "Scheduled"]


async def test_a_deletion_goes_through_the_kubelet_of_a_ready_node_and_at_once_otherwise() -> None:
    pods, store, controller = await cluster(n1=0.0, n2=0.0)
    pods.create(identity("a"), spec(), {}, {}, created=NOW, node="n1")
    pods.create(identity("b"), spec(), {}, {}, created=NOW, node="n2")
    await pods.writer.drain()
    pods.load()
    old = store.get("Lease", NODE_LEASE_NAMESPACE, "n2")  # n2 stops renewing
    await store.update({**old, "spec": {**old["spec"], "renewTime": "2020-01-01T00:00:00.000000Z"}})
    pods.delete(pods.get("default", "a"), "scaled down")
    pods.delete(pods.get("default", "b"), "scaled down")
    assert pods.get("default", "a").terminating and not pods.get("default", "a").ready
    await pods.writer.drain()
    kept = store.get("Pod", "default", "a")
    assert kept["metadata"]["deletionTimestamp"] and kept["metadata"]["deletionGracePeriodSeconds"] == 30
    assert store.get("Pod", "default", "b") is None  # no kubelet would confirm
    assert reasons(controller, "a") == ["Scheduled", "Killing"]


async def test_a_pod_deleted_before_it_was_written_is_never_written() -> None:
    pods, store, _ = await cluster(n1=0.0)
    pod = pods.create(identity("a"), spec(), {}, {}, created=NOW)
    pods.delete(pod, "scaled down")
    await pods.writer.drain()
    await pods.writer.drain()
    assert store.list("Pod") == []


async def test_a_node_notready_beyond_the_timeout_loses_its_pods_but_not_its_daemons() -> None:
    pods, store, controller = await cluster(n1=0.0, n2=9.0)  # n2: NotReady (grace 3) for 6 s (timeout 5)
    pods.create(identity("a"), spec(), {}, {}, created=NOW, node="n2")
    pods.create(identity("d", "DaemonSet"), spec(), {}, {}, created=NOW, node="n2")
    pods.create(identity("b"), spec(), {}, {}, created=NOW, node="n1")
    tolerations = [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                    "tolerationSeconds": 60}]  # its template's, as the Pod object carries them
    controller.replicasets[("default", "patient-h")] = SimpleNamespace(
        uid="rs-uid", rs=SimpleNamespace(raw={"spec": {"template": {"spec": {"tolerations": tolerations}}}}))
    pods.create(PodIdentity("default", "t", "ReplicaSet", "patient", "patient-h", "h"),
                spec(tolerations=tolerations), {}, {}, created=NOW, node="n2")
    await pods.writer.drain()
    pods.load()
    pods.tick()
    await pods.writer.drain()
    assert sorted(o["metadata"]["name"] for o in store.list("Pod")) == ["b", "d", "t"]
    assert store.get("Pod", "default", "t")["spec"]["tolerations"] == tolerations
    assert reasons(controller, "a")[-2:] == ["NodeNotReady", "TaintManagerEviction"]
    assert "TaintManagerEviction" not in reasons(controller, "d")


async def test_the_view_follows_the_status_the_kubelet_writes() -> None:
    pods, store, _ = await cluster(n1=0.0)
    pods.create(identity("a"), spec(), {}, {}, created=NOW, node="n1")
    await pods.writer.drain()
    obj = store.get("Pod", "default", "a")
    status = {"phase": "Running", "podIP": "127.213.0.9",
              "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2027-01-15T08:00:00Z"}],
              "containerStatuses": [{"name": "main", "restartCount": 1, "state": {"running": {}}}]}
    await store.update({**obj, "status": status})
    async for event in store.watch(kind="Pod", from_resource_version=0):
        pods.observe(event)
        if event.type == "MODIFIED":
            break
    pod = pods.get("default", "a")
    assert (pod.phase, pod.ready, pod.restarts, pod.address, pod.node) == ("Running", True, 1, "127.213.0.9", "n1")
    assert pod.identity == identity("a") and pod.available(0, NOW)


async def test_pods_are_written_in_batches_and_one_that_exists_spoils_none_of_the_others() -> None:
    pods, store, _ = await cluster(n1=0.0)
    await store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p3", "namespace": "default"},
                        "spec": {"containers": [{"name": "main", "image": "busybox"}]}})
    for i in range(100):
        pods.create(identity(f"p{i}"), spec("1m"), {}, {}, created=NOW)
    await pods.writer.drain()
    names = {o["metadata"]["name"]: o for o in store.list("Pod")}
    assert len(names) == 100 and "nodeName" not in names["p3"]["spec"]  # the one there first is left as it was
    assert names["p99"]["spec"]["nodeName"] == "n1"


async def test_a_leader_that_lost_its_lease_writes_no_more_pods() -> None:
    pods, store, controller = await cluster(n1=0.0)
    pods.create(identity("a"), spec(), {}, {}, created=NOW)
    controller.leading = False
    await pods.writer.drain()
    assert store.list("Pod") == [] and pods.get("default", "a") is None

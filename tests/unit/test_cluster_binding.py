"""The pure decisions of pods in a cluster (meshd.cluster.binding): the Pod object the leader writes, a pod's
identity and state read back, which pods a node failure evicts, and what a node's kubelet starts, stops and
finally deletes."""

from __future__ import annotations

import math

import pytest

from meshd.cluster import binding
from meshd.controller.pod import PodIdentity
from meshd.model.scheduling import Toleration

RS_POD = {"kind": "Pod", "metadata": {"name": "web-abcde", "namespace": "default",
                                      "labels": {"app": "web", "pod-template-hash": "h1"},
                                      "ownerReferences": [{"kind": "ReplicaSet", "name": "web-h1", "uid": "u",
                                                           "controller": True}]},
          "spec": {"nodeName": "n2", "containers": []}}


@pytest.mark.parametrize(("obj", "identity"), [
    (RS_POD, PodIdentity("default", "web-abcde", "ReplicaSet", "web-h1", "web-h1", "h1")),
    ({"kind": "Pod", "metadata": {"name": "db-0", "namespace": "x", "labels": {"controller-revision-hash": "db-r"},
                                  "ownerReferences": [{"kind": "StatefulSet", "name": "db", "controller": True}]}},
     PodIdentity("x", "db-0", "StatefulSet", "db", "", "db-r")),
    ({"kind": "Pod", "metadata": {"name": "job-q", "namespace": "x",
                                  "ownerReferences": [{"kind": "Job", "name": "job", "controller": True}]}},
     PodIdentity("x", "job-q", "Job", "job", "", "")),
    ({"kind": "Pod", "metadata": {"name": "bare", "namespace": "x"}}, PodIdentity("x", "bare", "Pod", "bare")),
    # a reference that does not control the pod is not its owner
    ({"kind": "Pod", "metadata": {"name": "bare", "namespace": "x",
                                  "ownerReferences": [{"kind": "Job", "name": "j"}]}},
     PodIdentity("x", "bare", "Pod", "bare")),
])
def test_a_pods_identity_comes_from_its_controller_reference_and_labels(obj, identity):
    assert binding.identity_of(obj) == identity
    assert binding.owned_pod(obj) == (identity.owner_kind != "Pod")


def test_the_leader_writes_the_pod_as_kubectl_shows_it_bound_or_unschedulable():
    identity = PodIdentity("default", "web-abcde", "Deployment", "web", "web-h1", "h1")
    owner = binding.owner_reference("ReplicaSet", "web-h1", "rs-uid")
    spec = {"containers": [{"name": "main", "image": "busybox", "ports": [{"containerPort": 80}]}]}
    pod = binding.pod_manifest(identity, spec, labels={"app": "web"}, annotations={}, created=0, uid="pod-uid",
                               owner=owner, node="n1")
    assert pod["spec"]["nodeName"] == "n1" and pod["spec"]["containers"] == spec["containers"]
    assert pod["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-h1",
                                                   "uid": "rs-uid", "controller": True, "blockOwnerDeletion": True}]
    assert pod["metadata"]["creationTimestamp"] == "1970-01-01T00:00:00Z" and pod["metadata"]["uid"] == "pod-uid"
    assert pod["status"] == {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}
    why = "0/3 nodes are available: 3 Insufficient cpu."
    pending = binding.pod_manifest(identity, spec, labels={}, annotations={}, created=0, uid="u", owner=None,
                                   node="", unschedulable=why)
    assert "nodeName" not in pending["spec"] and "ownerReferences" not in pending["metadata"]
    assert pending["status"]["conditions"] == [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                                "message": why}]
    state = binding.pod_state(pending)
    assert (state.phase, state.node, state.reason, state.message) == ("Pending", "", "Unschedulable", why)
    placed = binding.bound(pending, "n3")
    assert placed["spec"]["nodeName"] == "n3" and placed["status"]["conditions"][0]["status"] == "True"
    assert binding.unschedulable(placed, why)["status"]["conditions"][0]["reason"] == "Unschedulable"


def test_a_pods_state_is_read_from_the_status_its_kubelet_wrote():
    obj = {**RS_POD, "status": {
        "phase": "Running", "podIP": "127.213.0.5",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:10Z"}],
        "containerStatuses": [{"name": "main", "restartCount": 2, "state": {"running": {}}}],
        "initContainerStatuses": [{"name": "init", "restartCount": 1,
                                   "state": {"terminated": {"exitCode": 0, "finishedAt": "2026-01-01T00:00:05Z"}}}]}}
    state = binding.pod_state(obj)
    assert (state.phase, state.ready, state.restarts, state.node, state.address) == (
        "Running", True, 3, "n2", "127.213.0.5")
    assert state.ready_since == 1767225610.0 and state.containers["init"].exit_code == 0
    assert state.containers["init"].finished_at == 1767225605.0 and not state.terminating
    deleting = {**obj, "metadata": {**obj["metadata"], "deletionTimestamp": "2026-01-01T00:01:00Z"}}
    assert binding.pod_state(deleting).terminating and not binding.pod_state(deleting).ready
    assert binding.pod_state({"kind": "Pod", "metadata": {}}) == binding.PodState()


@pytest.mark.parametrize(("pods", "ages", "evicted"), [
    ({("d", "a"): ("n1", "ReplicaSet", 5.0)}, {"n1": 1.0}, []),  # renewing
    ({("d", "a"): ("n1", "ReplicaSet", 5.0)}, {"n1": 7.0, "n2": 0.0}, []),  # NotReady (grace 3), not for 5 s yet
    ({("d", "a"): ("n1", "ReplicaSet", 5.0)}, {"n1": 8.5, "n2": 0.0}, [("d", "a")]),  # NotReady for 5.5 s
    ({("d", "a"): ("n1", "ReplicaSet", 60.0)}, {"n1": 8.5, "n2": 0.0}, []),  # it tolerates a minute
    ({("d", "a"): ("n1", "ReplicaSet", math.inf)}, {"n1": 1e6, "n2": 0.0}, []),  # it tolerates it forever
    ({("d", "a"): ("n1", "ReplicaSet", 0.0)}, {"n1": 3.5, "n2": 0.0}, [("d", "a")]),  # tolerationSeconds 0
    ({("d", "a"): ("gone", "StatefulSet", 5.0)}, {"n1": 1.0}, [("d", "a")]),  # its node was deleted
    ({("d", "a"): ("n1", "DaemonSet", 5.0)}, {"n1": 100.0, "n2": 0.0}, []),  # a DaemonSet's pod: its node's
    ({("d", "a"): ("", "ReplicaSet", 5.0)}, {"n2": 0.0}, []),  # not bound: nothing to evict
    ({("d", "a"): ("n1", "Pod", 5.0)}, {"n1": None, "n2": 0.0}, []),  # never renewed: registering, not dead
    ({("d", "a"): ("n1", "Pod", 5.0)}, {"n1": 50.0, "n2": 40.0}, []),  # no node Ready: nowhere to go
    ({("d", "b"): ("n1", "Job", 5.0), ("d", "a"): ("n1", "Pod", 5.0), ("d", "c"): ("n2", "Pod", 5.0)},
     {"n1": 9.0, "n2": 0.0}, [("d", "a"), ("d", "b")]),
])
def test_a_node_notready_longer_than_its_pods_tolerate_loses_them(pods, ages, evicted):
    assert binding.evictions(pods, ages, grace=3.0) == evicted


@pytest.mark.parametrize(("tolerations", "stay"), [
    ((), 5.0),  # the --pod-eviction-timeout
    ((Toleration(binding.UNREACHABLE, "Exists", effect="NoExecute", toleration_seconds=30),), 30.0),
    ((Toleration(binding.UNREACHABLE, "Exists", effect="NoExecute"),), math.inf),
    ((Toleration("", "Exists"),), math.inf),  # tolerates every taint
    ((Toleration(binding.UNREACHABLE, "Exists", effect="NoSchedule"),), 5.0),  # not the NoExecute one
    ((Toleration("node.kubernetes.io/not-ready", "Exists", effect="NoExecute", toleration_seconds=1),), 5.0),
    ((Toleration(binding.UNREACHABLE, "Exists", effect="NoExecute", toleration_seconds=2),
      Toleration(binding.UNREACHABLE, "Exists", effect="NoExecute", toleration_seconds=9)), 9.0),
])
def test_how_long_a_pod_stays_on_an_unreachable_node_follows_its_tolerations(tolerations, stay):
    assert binding.tolerated_for(tolerations, 5.0) == stay


A, B, C = ("d", "a"), ("d", "b"), ("d", "c")


@pytest.mark.parametrize(("stored", "local", "plan"), [
    ({A: ("n1", False)}, {}, binding.KubeletPlan(start=(A,))),  # bound here: start it
    ({A: ("n2", False)}, {}, binding.KubeletPlan()),  # another node's: not ours
    ({A: ("n1", False)}, {A: False}, binding.KubeletPlan()),  # runs already
    ({}, {A: False}, binding.KubeletPlan(stop=(A,))),  # its object was deleted (evicted while we were away)
    ({A: ("n2", False)}, {A: False}, binding.KubeletPlan(stop=(A,))),  # bound elsewhere now
    ({A: ("n1", True)}, {A: False}, binding.KubeletPlan(stop=(A,))),  # being deleted: stop it gracefully
    ({A: ("n1", True)}, {A: True}, binding.KubeletPlan()),  # stopping: wait
    ({A: ("n1", True)}, {}, binding.KubeletPlan(finalize=(A,))),  # stopped: the object goes
    ({A: ("n2", True)}, {}, binding.KubeletPlan()),  # another node's to finalize
    ({A: ("n1", False)}, {A: True}, binding.KubeletPlan()),  # a new pod of the same name waits for the old one
    ({A: ("", False)}, {}, binding.KubeletPlan()),  # not bound yet
    ({A: ("n1", False), B: ("n1", True), C: ("n3", False)}, {B: False, C: False},
     binding.KubeletPlan(start=(A,), stop=(B, C))),
])
def test_the_kubelet_runs_exactly_the_pods_bound_to_its_node(stored, local, plan):
    assert binding.kubelet_plan("n1", stored, local) == plan


@pytest.mark.parametrize("ready_since, live, transition, probes", [
    (None, False, "2026-01-01T00:00:00Z", False),  # not Ready: the rendered time stays; probes never written
    (1_780_000_000.0, False, "2026-05-28T20:26:40Z", False),  # Ready since then, on both conditions
    (1_780_000_000.0, True, "2026-05-28T20:26:40Z", True),  # the API's live listing keeps what probes said
])
def test_a_nodes_pod_status_says_since_when_it_is_ready_and_not_what_probes_said(ready_since, live, transition,
                                                                                   probes):
    rendered = {"phase": "Running",
                "conditions": [{"type": t, "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
                               for t in ("Ready", "ContainersReady")] + [{"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [{"name": "web", "probes": {"readiness": "ok"}}]}
    status = binding.node_status(rendered, ready_since=ready_since, live=live)
    assert [c.get("lastTransitionTime") for c in status["conditions"]] == [transition, transition, None]
    assert ("probes" in status["containerStatuses"][0]) is probes
    assert "probes" in rendered["containerStatuses"][0]  # the rendering itself is left as it was

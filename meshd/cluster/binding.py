"""Pods as `v1 Pod` objects of the shared store (a cluster on etcd), the pure decisions: the object the leader
writes for a pod it creates, a pod's identity and state read back from its object, which pods a node failure
evicts, and what a node's kubelet starts, stops and finally deletes. Objects in, decisions out; the I/O is in
meshd.cluster.pods (the leader's and every agent's view, and the writes) and meshd.cluster.kubelet."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshd.cluster.nodes import parse_time
from meshd.controller.persist import is_owned_pod
from meshd.controller.pod import PodIdentity
from meshd.model.scheduling import Toleration

UNREACHABLE = "node.kubernetes.io/unreachable"  # the taint of a node that stopped renewing its Lease

TEMPLATE_HASH_LABEL = "pod-template-hash"
REVISION_LABEL = "controller-revision-hash"
OWNER_API = {"ReplicaSet": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1", "Job": "batch/v1"}


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ownerReference that controls the object (controller: true), if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("controller"):
            return ref
    return None


def owned_pod(obj: Mapping[str, Any]) -> bool:
    """A Pod a controller made (not a user's bare Pod, which is a desired object too)."""
    return is_owned_pod(obj)


def node_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("spec") or {}).get("nodeName") or "")


def deleting(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def identity_of(obj: Mapping[str, Any]) -> PodIdentity:
    """Who the pod belongs to, from its ownerReferences and labels (what the controllers count pods by)."""
    meta = obj.get("metadata") or {}
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    labels = meta.get("labels") or {}
    ref = controller_ref(obj)
    if ref is None:
        return PodIdentity(namespace, name, "Pod", name)
    kind, owner = str(ref.get("kind") or ""), str(ref.get("name") or "")
    if kind == "ReplicaSet":
        return PodIdentity(namespace, name, "ReplicaSet", owner, owner, str(labels.get(TEMPLATE_HASH_LABEL, "")))
    return PodIdentity(namespace, name, kind, owner, "", str(labels.get(REVISION_LABEL, "")))


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    return {"apiVersion": OWNER_API.get(kind, "v1"), "kind": kind, "name": name, "uid": uid, "controller": True,
            "blockOwnerDeletion": True}


def scheduled_condition(node: str, message: str = "") -> dict[str, Any]:
    if node:
        return {"type": "PodScheduled", "status": "True"}
    return {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}


def pod_manifest(identity: PodIdentity, spec: Mapping[str, Any], *, labels: Mapping[str, str],
                 annotations: Mapping[str, str], created: float, uid: str, owner: Mapping[str, Any] | None,
                 node: str, unschedulable: str = "") -> dict[str, Any]:
    """The Pod the leader writes, as `kubectl get pod -o json` shows it: `spec` (rendered from the template)
    bound to `node`, or Pending and Unschedulable (why in `unschedulable`) when no node fits."""
    metadata: dict[str, Any] = {"name": identity.name, "namespace": identity.namespace, "uid": uid,
                                "labels": dict(labels), "annotations": dict(annotations),
                                "creationTimestamp": rfc3339(created)}
    if owner is not None:
        metadata["ownerReferences"] = [dict(owner)]
    body = copy.deepcopy(dict(spec))
    if node:
        body["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": body,
            "status": {"phase": "Pending", "conditions": [scheduled_condition(node, unschedulable)]}}


def bound(obj: Mapping[str, Any], node: str) -> dict[str, Any]:
    """The Pod bound to `node` (the scheduler's Binding): spec.nodeName set, PodScheduled True."""
    out = copy.deepcopy(dict(obj))
    out.setdefault("spec", {})["nodeName"] = node
    status = out.setdefault("status", {})
    status.setdefault("phase", "Pending")
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    status["conditions"].insert(0, scheduled_condition(node))
    return out


def unschedulable(obj: Mapping[str, Any], message: str) -> dict[str, Any]:
    out = copy.deepcopy(dict(obj))
    status = out.setdefault("status", {})
    status["phase"] = "Pending"
    status["conditions"] = [scheduled_condition("", message)]
    return out


@dataclass(frozen=True)
class ContainerEnd:
    finished_at: float | None = None
    exit_code: int | None = None


def node_status(status: Mapping[str, Any], *, ready_since: float | None, live: bool = False) -> dict[str, Any]:
    """A pod's status as its node writes it into its object: Ready and ContainersReady since the pod became Ready
    (`ready_since`, None while it is not), and without what probes last said (it changes every period), unless
    `live` (the API's own listing of this node's pods). Pure."""
    out = copy.deepcopy(dict(status))
    for condition in out.get("conditions", []):
        if condition.get("type") in ("Ready", "ContainersReady") and ready_since is not None:
            condition["lastTransitionTime"] = rfc3339(ready_since)
    if not live:
        for entry in [*out.get("containerStatuses", []), *out.get("initContainerStatuses", [])]:
            entry.pop("probes", None)
    return out


@dataclass(frozen=True)
class PodState:
    """A pod's state as its Pod object says (written by the kubelet of its node)."""

    phase: str = "Pending"
    ready: bool = False
    ready_since: float | None = None
    restarts: int = 0
    terminating: bool = False
    node: str = ""
    address: str | None = None
    reason: str = ""
    message: str = ""
    containers: Mapping[str, ContainerEnd] = field(default_factory=dict)


def pod_state(obj: Mapping[str, Any]) -> PodState:
    status = obj.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, Mapping)}
    ready_condition = conditions.get("Ready") or {}
    ready = ready_condition.get("status") == "True" and not deleting(obj)
    scheduled = conditions.get("PodScheduled") or {}
    ends = {}
    restarts = 0
    for entry in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        restarts += int(entry.get("restartCount") or 0)
        terminated = (entry.get("state") or {}).get("terminated") or {}
        ends[str(entry.get("name", ""))] = ContainerEnd(parse_time(terminated.get("finishedAt")),
                                                        terminated.get("exitCode"))
    return PodState(
        phase=str(status.get("phase") or "Pending"),
        ready=ready,
        ready_since=(parse_time(ready_condition.get("lastTransitionTime")) or 0.0) if ready else None,
        restarts=restarts if "containerStatuses" in status else 0,
        terminating=deleting(obj),
        node=node_of(obj),
        address=status.get("podIP") or None,
        reason=str(scheduled.get("reason") or "") if scheduled.get("status") == "False" else "",
        message=str(scheduled.get("message") or "") if scheduled.get("status") == "False" else "",
        containers=ends,
    )


def tolerated_for(tolerations: Sequence[Toleration], default: float) -> float:
    """How long a pod stays bound to a node that stopped answering (Kubernetes' `node.kubernetes.io/unreachable`
    NoExecute taint): a toleration of it keeps the pod its tolerationSeconds (forever without); else `default`,
    the --pod-eviction-timeout (what Kubernetes' default 300 s toleration does)."""
    kept = [math.inf if t.toleration_seconds is None else max(float(t.toleration_seconds), 0.0)
            for t in tolerations if t.tolerates(UNREACHABLE, "", "NoExecute")]
    return max(kept) if kept else default


def evictions(pods: Mapping[tuple[str, str], tuple[str, str, float]], lease_ages: Mapping[str, float | None], *,
              grace: float) -> list[tuple[str, str]]:
    """The pods (namespace, name) -> (node, owner kind, how long it tolerates its node NotReady) a node failure
    evicts: those bound to a node NotReady for longer than they tolerate (its Lease older than grace + that) or
    to a node that no longer exists (every pod of a deleted node, a DaemonSet's too). A DaemonSet's pods stay: they belong to their node (Kubernetes gives them a
    toleration without end). When no node is Ready (the whole cluster starting again, or this leader cut off),
    nothing is evicted: there is nowhere to move pods to, as Kubernetes' full-disruption mode."""
    if not any(age is not None and age <= grace for age in lease_ages.values()):
        return []
    out = []
    for key, (node, owner_kind, stay) in pods.items():
        if node and node not in lease_ages:  # deleted (kubectl delete node): a DaemonSet's pod goes too
            out.append(key)
            continue
        if not node or owner_kind == "DaemonSet":
            continue
        age = lease_ages[node]
        if age is not None and age > grace + stay:
            out.append(key)
    return sorted(out)


@dataclass(frozen=True)
class KubeletPlan:
    start: tuple[tuple[str, str], ...] = ()  # bound here, not deleting, nothing runs: start a worker
    stop: tuple[tuple[str, str], ...] = ()  # runs here, but its object is gone, deleting, or bound elsewhere
    finalize: tuple[tuple[str, str], ...] = ()  # deleting, bound here, nothing runs any more: delete the object


def kubelet_plan(node: str, stored: Mapping[tuple[str, str], tuple[str, bool]],
                 local: Mapping[tuple[str, str], bool]) -> KubeletPlan:
    """`stored`: every Pod object as (its node, deleting); `local`: this node's workers as terminating."""
    start = [k for k, (n, gone) in stored.items() if n == node and not gone and k not in local]
    stop = [k for k, terminating in local.items() if not terminating
            and (k not in stored or stored[k][0] != node or stored[k][1])]
    finalize = [k for k, (n, gone) in stored.items() if n == node and gone and k not in local]
    return KubeletPlan(tuple(sorted(start)), tuple(sorted(stop)), tuple(sorted(finalize)))


__all__ = ["UNREACHABLE", "KubeletPlan", "PodState", "bound", "tolerated_for", "controller_ref", "deleting", "evictions", "identity_of",
           "kubelet_plan", "node_of", "owned_pod", "owner_reference", "pod_manifest", "pod_state", "unschedulable"]

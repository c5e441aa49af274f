"""Nodes and Leases as the kubelet keeps them: each agent registers a `v1 Node` and renews a
`coordination.k8s.io/v1 Lease` of the same name in kube-node-lease as its heartbeat; a node whose Lease was
last renewed longer ago than the grace is not Ready (its condition Unknown, as the node lifecycle controller
marks it). Pure: objects in, objects out."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

NODE_LEASE_NAMESPACE = "kube-node-lease"
LEADER_LEASE_NAMESPACE = "kube-system"
LEADER_LEASE_NAME = "meshd-controller"


def micro_time(ts: float) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds), as Lease renewTime carries."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: Any) -> float | None:
    """A Time or MicroTime as seconds since the epoch; None when absent or malformed."""
    if not isinstance(text, str) or not text:
        return None
    for layout in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, layout).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
    return None


def lease(namespace: str, name: str, *, holder: str, duration: int, renewed: float,
          acquired: float | None = None, transitions: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration,
                 "acquireTime": micro_time(renewed if acquired is None else acquired),
                 "renewTime": micro_time(renewed), "leaseTransitions": transitions},
    }


def renewed(previous: Mapping[str, Any] | None, fresh: dict[str, Any]) -> dict[str, Any]:
    """`fresh` written over the previous Lease: same holder keeps its acquireTime and transitions, a new holder
    counts one more transition; the previous resourceVersion guards the write."""
    if previous is None:
        return fresh
    spec, old = fresh["spec"], previous.get("spec") or {}
    if old.get("holderIdentity") == spec["holderIdentity"]:
        spec["acquireTime"] = old.get("acquireTime") or spec["acquireTime"]
        spec["leaseTransitions"] = int(old.get("leaseTransitions") or 0)
    else:
        spec["leaseTransitions"] = int(old.get("leaseTransitions") or 0) + 1
    fresh["metadata"] = {**previous["metadata"], **fresh["metadata"]}
    return fresh


USER_SPEC_FIELDS = ("unschedulable", "taints")  # a Node's spec fields users write (kubectl cordon, taint)


def registration(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """What the agent writes of its Node: `desired` when there is none, else the stored Node brought up to date
    with what the agent knows (status, its own labels, its spec fields), keeping what users wrote (cordon:
    spec.unschedulable, taints, other labels, annotations), as a kubelet does; None when nothing changed."""
    if current is None:
        return copy.deepcopy(dict(desired))
    spec = {**(current.get("spec") or {}), **(desired.get("spec") or {})}
    labels = {**(current["metadata"].get("labels") or {}), **(desired["metadata"].get("labels") or {})}
    fresh = {**copy.deepcopy(dict(desired)), "metadata": {**current["metadata"], "labels": labels}, "spec": spec}
    if all(current.get(k) == fresh.get(k) for k in ("spec", "status")) and current["metadata"].get("labels") == labels:
        return None
    return fresh


def lease_age(lease_obj: Mapping[str, Any] | None, now: float) -> float | None:
    renew = parse_time(((lease_obj or {}).get("spec") or {}).get("renewTime"))
    return None if renew is None else max(now - renew, 0.0)


def with_readiness(node: Mapping[str, Any], node_lease: Mapping[str, Any] | None, *, now: float,
                   grace: float) -> dict[str, Any]:
    """The node as the API shows it: Ready while its Lease is younger than `grace`, else Unknown."""
    shown = copy.deepcopy(dict(node))
    conditions = [c for c in (shown.setdefault("status", {}).get("conditions") or []) if c.get("type") != "Ready"]
    age = lease_age(node_lease, now)
    renew = ((node_lease or {}).get("spec") or {}).get("renewTime") or shown["metadata"].get("creationTimestamp")
    if age is not None and age <= grace:
        ready = {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "message": "the meshd agent is renewing its lease"}
    else:
        why = "never renewed" if age is None else f"last renewed {age:.0f}s ago, grace {grace:g}s"
        ready = {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                 "message": f"the meshd agent stopped renewing its lease ({why})"}
    ready["lastHeartbeatTime"] = renew
    ready["lastTransitionTime"] = renew
    shown["status"]["conditions"] = [*conditions, ready]
    return shown


def is_ready(node: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def nodes_with_readiness(store: Any, *, grace: float, now: float) -> list[dict[str, Any]]:
    """Every Node of the shared store, each Ready or not by its Lease in kube-node-lease."""
    return [with_readiness(n, store.get("Lease", NODE_LEASE_NAMESPACE, n["metadata"]["name"]), now=now, grace=grace)
            for n in store.list("Node")]


__all__ = ["LEADER_LEASE_NAME", "LEADER_LEASE_NAMESPACE", "NODE_LEASE_NAMESPACE", "USER_SPEC_FIELDS", "is_ready",
           "lease", "lease_age", "micro_time", "nodes_with_readiness", "parse_time", "registration", "renewed",
           "with_readiness"]

"""What the controllers count: a pod as the pure plans see it, a ReplicaSet's and a Deployment's replica counts,
read from the pods (this node's workers, or a cluster's Pod objects, which read alike). Pure."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from meshd.controller.plan import PodView, ReplicaSetView
from meshd.controller.records import DeploymentStatus, ObjectRecord, ReplicaSetRecord
from meshd.model.objects import Deployment


def pod_view(pod: Any, rs: ReplicaSetRecord, now: float) -> PodView:
    """A pod (a PodWorker or a cluster's StoredPod) of a ReplicaSet as its plan sees it."""
    return PodView(
        name=pod.name,
        created=pod.created,
        scheduled=pod.scheduled,
        ready=pod.ready,
        available=pod.available(rs.rs.min_ready_seconds, now),
        restarts=pod.restarts,
        node=getattr(pod, "node", ""),  # a cluster's StoredPod
    )


def replicaset_view(rs: ReplicaSetRecord, pods: Sequence[Any], now: float) -> ReplicaSetView:
    """A ReplicaSet's counts over its pods (the ones not terminating)."""
    available = sum(1 for p in pods if p.available(rs.rs.min_ready_seconds, now))
    return ReplicaSetView(rs.name, rs.revision, rs.replicas, len(pods), available)


def deployment_status(record: ObjectRecord, owned: Iterable[ReplicaSetRecord],
                      pods_of: Callable[[ReplicaSetRecord], Sequence[Any]], now: float) -> DeploymentStatus:
    """A Deployment's replica counts (what its status and the metrics report) over its ReplicaSets' pods."""
    deployment: Deployment = record.obj  # type: ignore[assignment]
    current_hash = record.template_hash()
    owned = list(owned)
    new = next((r for r in owned if r.template_hash == current_hash), None)
    pods = [(r, p) for r in owned for p in pods_of(r)]
    return DeploymentStatus(
        desired=deployment.replicas,
        current=len(pods),
        updated=sum(1 for r, _ in pods if r is new),
        ready=sum(1 for _, p in pods if p.ready),
        available=sum(1 for r, p in pods if p.available(r.rs.min_ready_seconds, now)),
        new=new,
    )


__all__ = ["deployment_status", "pod_view", "replicaset_view"]

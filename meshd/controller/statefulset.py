"""A StatefulSet's decisions as pure functions: which ordinals to create, which pods to delete, and the status.

Kubernetes' pkg/controller/statefulset/stateful_set_control.go is the model:
- pods are NAME-0..NAME-(replicas-1); one whose ordinal is >= replicas is condemned and goes, highest first;
- OrderedReady creates one pod at a time in ordinal order, each Running and Ready before the next, and removes
  condemned pods one at a time, only while every lower pod is Running and Ready; Parallel does both at once;
- a pod is never recreated while the one of its name is still terminating;
- RollingUpdate replaces pods not at the update revision one at a time from the highest ordinal down to
  `partition`, each after the pods above it are Running and Ready; OnDelete replaces only the pods a user deletes;
- a (re)created pod gets the current revision when its ordinal is below the partition, the update revision
  otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"


@dataclass(frozen=True)
class OrdinalPod:
    """What the StatefulSet's decisions need to know of one of its pods."""

    ordinal: int
    revision: str
    ready: bool = False  # Running and Ready
    available: bool = False  # ready for minReadySeconds
    terminating: bool = False


@dataclass(frozen=True)
class StatefulSetPlan:
    create: tuple[tuple[int, str], ...] = ()  # (ordinal, revision)
    delete: tuple[int, ...] = ()  # ordinals
    waiting: str = ""  # why nothing more happens now (for events and tests)


@dataclass(frozen=True)
class StatefulSetCounts:
    replicas: int
    ready: int
    available: int
    current: int
    updated: int
    current_revision: str
    update_revision: str


def pod_name(statefulset: str, ordinal: int) -> str:
    return f"{statefulset}-{ordinal}"


def ordinal_of(statefulset: str, pod: str) -> int | None:
    """NAME-N -> N; None for a name that is not one of this StatefulSet's."""
    match = re.fullmatch(re.escape(statefulset) + r"-(0|[1-9][0-9]*)", pod)
    return int(match.group(1)) if match else None


def plan_statefulset(
    *,
    replicas: int,
    pods: Sequence[OrdinalPod],
    parallel: bool,
    on_delete: bool,
    partition: int,
    current_revision: str,
    update_revision: str,
) -> StatefulSetPlan:
    """What to do in this pass to bring the pods to `replicas` at the update revision."""
    by_ordinal = {p.ordinal: p for p in pods}
    create: list[tuple[int, str]] = []
    delete: list[int] = []

    def revision_for(ordinal: int) -> str:
        return current_revision if not on_delete and ordinal < partition else update_revision

    # 1. the pods that should exist, in ordinal order
    for ordinal in range(replicas):
        pod = by_ordinal.get(ordinal)
        if pod is None:
            create.append((ordinal, revision_for(ordinal)))
            if not parallel:
                return StatefulSetPlan(tuple(create), (), f"waiting for pod {ordinal} to be Running and Ready")
            continue
        if not parallel and (pod.terminating or not pod.ready):
            return StatefulSetPlan(tuple(create), (), f"waiting for pod {ordinal} to be Running and Ready")
    if create:
        return StatefulSetPlan(tuple(create), (), "creating pods")

    # 2. the condemned pods (ordinal >= replicas), highest first
    condemned = sorted((p for p in pods if p.ordinal >= replicas), key=lambda p: -p.ordinal)
    for pod in condemned:
        if pod.terminating:
            if not parallel:
                return StatefulSetPlan((), tuple(delete), f"waiting for pod {pod.ordinal} to terminate")
            continue
        if not parallel and any(not p.ready or p.terminating for p in pods if p.ordinal < pod.ordinal):
            return StatefulSetPlan((), tuple(delete), "waiting for lower pods to be Running and Ready")
        delete.append(pod.ordinal)
        if not parallel:
            return StatefulSetPlan((), tuple(delete), f"scaling down: pod {pod.ordinal}")
    if delete:
        return StatefulSetPlan((), tuple(delete), "scaling down")

    # 3. the rolling update, highest ordinal first, down to the partition
    if on_delete:
        return StatefulSetPlan()
    for ordinal in range(replicas - 1, partition - 1, -1):
        pod = by_ordinal[ordinal]
        if pod.revision != update_revision and not pod.terminating:
            return StatefulSetPlan((), (ordinal,), f"updating pod {ordinal}")
        if pod.terminating or not pod.ready:
            return StatefulSetPlan((), (), f"waiting for pod {ordinal} to be Running and Ready")
    return StatefulSetPlan()


def statefulset_counts(
    *, replicas: int, pods: Sequence[OrdinalPod], current_revision: str, update_revision: str
) -> StatefulSetCounts:
    """The status counts; the current revision becomes the update revision once every replica runs it."""
    live = [p for p in pods if not p.terminating]
    updated = sum(1 for p in live if p.revision == update_revision)
    if updated == replicas and len(live) == replicas and all(p.ready for p in live):
        current_revision = update_revision
    return StatefulSetCounts(
        replicas=len(live),
        ready=sum(1 for p in live if p.ready),
        available=sum(1 for p in live if p.available),
        current=sum(1 for p in live if p.revision == current_revision),
        updated=updated,
        current_revision=current_revision,
        update_revision=update_revision,
    )


def claim_name(template: str, statefulset: str, ordinal: int) -> str:
    """The PersistentVolumeClaim of one pod for one volumeClaimTemplate: TEMPLATE-NAME-ORDINAL."""
    return f"{template}-{pod_name(statefulset, ordinal)}"


__all__ = [
    "POD_INDEX_LABEL",
    "POD_NAME_LABEL",
    "REVISION_LABEL",
    "OrdinalPod",
    "StatefulSetCounts",
    "StatefulSetPlan",
    "claim_name",
    "ordinal_of",
    "plan_statefulset",
    "pod_name",
    "statefulset_counts",
]

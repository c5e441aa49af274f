"""A ReplicaSet adopts the bare Pods its selector matches, as Kubernetes' ReplicaSet controller claims pods
(ControllerRefManager.ClaimPods; the ReplicaSet page's "non-template pod acquisitions"): a user's Pod with no
controller, not being deleted, in the ReplicaSet's namespace, whose labels the selector matches, gets the
ReplicaSet as its controller (an ownerReference), counts as one of its replicas (a surplus is scaled down as any
other) and goes with it. A ReplicaSet whose owner is gone or being deleted adopts nothing.

On one node a bare Pod is a desired object (Controller.objects) run by its worker: once its object is written with
the ownerReference, the object is the ReplicaSet's pod's (meshd.cluster.podobjects writes its status, and removes it
with its worker) and the worker counts for the ReplicaSet. The decision is pure (`claims`); `adopt_orphans` writes
it. In a cluster (etcd) pods are not claimed yet."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from meshd.controller.cascade import reassign_worker
from meshd.controller.deletion import terminating
from meshd.controller.persist import controller_reference, is_owned_pod
from meshd.controller.pod import PodIdentity
from meshd.controller.replicasets import ensure_bare_replicaset
from meshd.model.objects import LabelSelector, ReplicaSet
from meshd.store import Conflict, Update

if TYPE_CHECKING:
    from meshd.controller.loop import Controller
    from meshd.controller.records import ReplicaSetRecord

Key = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class Claimant:
    """A ReplicaSet that may adopt: its key, selector and creation time (the oldest matching one adopts)."""

    key: Key
    selector: LabelSelector
    created: float


def claims(claimants: Sequence[Claimant], orphans: Mapping[Key, Mapping[str, str]]) -> dict[Key, Key]:
    """Which ReplicaSet adopts each orphan (pod key -> ReplicaSet key), from the orphans' labels: the oldest
    ReplicaSet of the pod's namespace whose selector matches them (an empty selector matches none). Pure."""
    ordered = sorted(claimants, key=lambda c: (c.created, c.key))
    out = {}
    for pod, labels in sorted(orphans.items()):
        owner = next((c.key for c in ordered if c.key[0] == pod[0] and c.selector.matches(labels)), None)
        if owner is not None:
            out[pod] = owner
    return out


def _claimants(c: Controller) -> list[Claimant]:
    return [Claimant(key, rs.rs.selector, rs.created) for key, rs in c.replicasets.items() if c._owner_exists(rs)]


def _orphans(c: Controller) -> dict[Key, Mapping[str, str]]:
    """The user's Pods of this node that a ReplicaSet may adopt: running or starting, with no controller."""
    out: dict[Key, Mapping[str, str]] = {}
    for key, worker in c.pods.items():
        if worker.identity.owner_kind != "Pod" or worker.terminating or ("Pod", *key) not in c.objects:
            continue
        stored = c.store.get("Pod", *key)
        if stored is not None and not is_owned_pod(stored) and not terminating(stored["metadata"]):
            out[key] = worker.labels
    return out


async def adopt_orphans(c: Controller) -> None:
    """One pass: the orphans a ReplicaSet claims get it as their controller (one store transaction)."""
    if c.cluster is not None or c.pod_objects is None:
        return
    orphans = _orphans(c)
    if not orphans:
        return
    now = c.now()
    for record in list(c.objects.values()):  # a ReplicaSet just applied claims before it counts its pods
        if isinstance(record.obj, ReplicaSet):
            ensure_bare_replicaset(c, record, now)
    claimed = claims(_claimants(c), orphans)
    if not claimed:
        return
    async with c._write_lock:
        writes = {}
        for pod, rs_key in claimed.items():
            stored, rs = c.store.get("Pod", *pod), c.replicasets.get(rs_key)
            if stored is None or rs is None or is_owned_pod(stored) or terminating(stored["metadata"]):
                continue  # changed meanwhile: the next pass decides again
            row = copy.deepcopy(dict(stored))
            row["metadata"]["ownerReferences"] = [*(row["metadata"].get("ownerReferences") or []),
                                                  controller_reference("ReplicaSet", rs.name, rs.uid)]
            writes[pod] = (rs, row)
        try:
            await c.store.transaction([Update(row) for _, row in writes.values()])
        except Conflict:  # a status write came between: the next pass claims them again
            c.kick()
            return
        for pod, (rs, row) in writes.items():
            _adopted(c, pod, rs, str(row["metadata"].get("uid") or ""))
    c.kick()


def _adopted(c: Controller, pod: Key, rs: ReplicaSetRecord, uid: str) -> None:
    """The pod's worker is the ReplicaSet's now, under its object's uid; the Pod is no longer a desired object."""
    worker = c.pods.get(pod)
    c.objects.pop(("Pod", *pod), None)
    if worker is not None:
        worker.uid = uid or worker.uid
        reassign_worker(c, worker, PodIdentity(*pod, rs.owner_kind, rs.owner, rs.name, rs.template_hash))
    c._notify("Pod", *pod)
    c.events.record("ReplicaSet", rs.namespace, rs.name, "Normal", "SuccessfulAdoption",
                    f"Adopted pod: {pod[1]}")


__all__ = ["Claimant", "adopt_orphans", "claims"]

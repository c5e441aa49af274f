"""A ReplicaSet's pass on one node's controller: a bare ReplicaSet's record kept in line with its object (a changed
template replaces its pods: it does not roll), and the pods the pure plan (meshd.controller.plan.plan_replicaset)
says to create or delete, created in slow-start batches within the node's pod objects limit. The pods are pod
workers here (on one node), or Pod objects bound by the scheduler in a cluster (Controller._new_worker)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshd.controller.plan import creation_batch, next_batch, plan_replicaset
from meshd.controller.pod import PodIdentity, PodWorker
from meshd.controller.records import ObjectRecord, ReplicaSetRecord
from meshd.controller.views import pod_view
from meshd.manifests import template_hash
from meshd.model.objects import ReplicaSet

if TYPE_CHECKING:
    from meshd.controller.loop import Controller

_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def ensure_bare_replicaset(c: Controller, record: ObjectRecord, now: float) -> None:
    rs: ReplicaSet = record.obj  # type: ignore[assignment]
    key = (rs.metadata.namespace, rs.metadata.name)
    current = c.replicasets.get(key)
    if current is None or current.rs != rs or current.replicas != rs.replicas:
        hash_ = template_hash(rs.template)
        if current is not None and current.template_hash != hash_ and current.owner_kind == "ReplicaSet":
            # A bare ReplicaSet does not roll: a changed template replaces its pods (a Deployment's
            # ReplicaSet orphaned into a bare one keeps them: meshd.controller.cascade).
            for worker in c._pods_of(current):
                c._terminate(worker, "template changed")
        c.replicasets[key] = ReplicaSetRecord(rs, "ReplicaSet", rs.metadata.name, hash_, 1, rs.replicas,
                                              current.created if current else now, record.uid)
        c._dirty = True


def reconcile_replicaset(c: Controller, rs: ReplicaSetRecord, now: float) -> None:
    pods = c._pods_of(rs)
    missing, delete = plan_replicaset(rs.replicas, [pod_view(p, rs, now) for p in pods])
    for name in delete:
        c._terminate(c.managed[(rs.namespace, name)], "scaled down")
    key = (rs.namespace, rs.name)
    batch = c._batches.get(key, 1)
    room = c.capacity.pod_objects - sum(1 for w in c.pods.values() if not w.terminating) \
        if c.cluster is None else missing  # in a cluster the scheduler says what fits
    create = creation_batch(missing, batch=batch, room=room)
    for _ in range(create):
        create_pod(c, rs, now)
    c._batches[key] = next_batch(batch, created=create, missing=missing)
    if create < missing and create == batch:
        c.kick()  # slow start: the next batch in the next pass, after the loop served others
    if create < missing and room <= create:
        if key not in c._short:
            c._short.add(key)
            c.events.record("ReplicaSet", rs.namespace, rs.name, "Warning", "FailedCreate",
                            f"node pod limit reached: {c.capacity.pods} running and "
                            f"{c.capacity.pod_objects - c.capacity.pods} Pending at most "
                            f"({missing - create} pods not created)")
    else:
        c._short.discard(key)


def create_pod(c: Controller, rs: ReplicaSetRecord, now: float) -> PodWorker:
    while True:
        suffix = "".join(c._rng.choice(_SUFFIX_ALPHABET) for _ in range(5))
        name = f"{rs.name}-{suffix}"
        if (rs.namespace, name) not in c.managed:
            break
    template = rs.rs.template
    owner_kind = rs.owner_kind
    identity = PodIdentity(rs.namespace, name, owner_kind, rs.owner, rs.name, rs.template_hash)
    worker = c._new_worker(identity, template.spec, dict(template.metadata.labels),
                           dict(template.metadata.annotations), created=now)
    c.events.record("ReplicaSet", rs.namespace, rs.name, "Normal", "SuccessfulCreate", f"Created pod: {name}")
    return worker


__all__ = ["create_pod", "ensure_bare_replicaset", "reconcile_replicaset"]

"""Deletion with a propagationPolicy other than Background (DeleteOptions, `kubectl delete --cascade=...`):

- Orphan: the owner goes and its dependents stay, running, without the ownerReference to it, whatever the owner
  (Deployment -> ReplicaSets, ReplicaSet/StatefulSet/DaemonSet/Job -> pods, CronJob -> Jobs). Which objects are
  dependents is one decision over ownerReferences (meshd.controller.garbage); releasing one is per kind of
  dependent: a ReplicaSet becomes a bare one, a pod a bare Pod (its containers untouched), a Job one no CronJob
  owns. One store transaction: the owner deleted, each released dependent written.
- Foreground: meshd.controller.terminating (the owner stays, Terminating, until its dependents are gone).

In a cluster (pods are Pod objects of the shared store: meshd.cluster.pods) an orphaned pod's object is written
without the ownerReference, bound to the node it runs on: every agent then takes it for a bare Pod, its node's
kubelet keeps it running (meshd.cluster.kubelet), and no controller counts it. A status write of its kubelet
racing the orphaning makes it try again (the transaction is refused whole).

The controller's helpers, as meshd.controller.sets: functions of the Controller, kept out of loop.py."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from meshd.controller import deletion, garbage
from meshd.controller.cronjobs import SCHEDULED_ANNOTATION
from meshd.controller.garbage import CannotOrphan, Dependent, OwnerReference, Orphaning
from meshd.controller.persist import desired_object, load_records
from meshd.controller.pod import PodIdentity, PodWorker
from meshd.controller.records import REVISION_ANNOTATION, ObjectRecord, ReplicaSetRecord
from meshd.controller.sets import SET_KINDS
from meshd.driver.base import LABEL_OWNER, LABEL_OWNER_KIND, LABEL_REPLICASET, LABEL_TEMPLATE_HASH
from meshd.manifests import load_objects
from meshd.manifests.hashing import template_hash
from meshd.manifests.render import render_pod_spec
from meshd.model.objects import Job, Pod, ReplicaSet
from meshd.store import Conflict, Create, Delete, Operation, Update

if TYPE_CHECKING:
    from meshd.controller.loop import Controller

ORPHANABLE = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob")  # owners meshd orphans for
ATTEMPTS = 5  # an orphaning tried again when another agent wrote a released object meanwhile (a pod's status)

Written = Mapping[tuple[str, str], Mapping[str, Any]]  # (kind, name) -> the stored object the transaction wrote
Release = tuple[list[Operation], Callable[[Written], None]]  # its writes, and what then changes in memory


def orphaned_manifest(rs: ReplicaSetRecord) -> dict[str, Any]:
    """A Deployment's ReplicaSet as a bare one: its labels, template and replica count, no owner. Pure."""
    manifest = copy.deepcopy(dict(rs.rs.raw))
    meta = {k: v for k, v in (manifest.get("metadata") or {}).items() if k in ("name", "namespace", "labels",
                                                                            "annotations")}
    meta["annotations"] = {**(meta.get("annotations") or {}), REVISION_ANNOTATION: str(rs.revision)}
    manifest.update(apiVersion="apps/v1", kind="ReplicaSet", metadata=meta)
    manifest.setdefault("spec", {})["replicas"] = rs.replicas
    return manifest


def bare_pod_manifest(worker: PodWorker) -> dict[str, Any]:
    """A pod a controller ran, as a bare Pod's manifest: its labels, annotations and whole spec. Pure."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": worker.name, "namespace": worker.namespace, "labels": dict(worker.labels),
                         "annotations": dict(worker.annotations)},
            "spec": render_pod_spec(worker.spec)}


# --- the candidates: every object that can have an owner, with the ownerReferences the API shows -------------

def _uid(c: Controller, kind: str, namespace: str, name: str) -> str:
    record = c.objects.get((kind, namespace, name))
    return record.uid if record is not None else ""


def candidates(c: Controller, namespace: str) -> list[Dependent]:
    found: list[Dependent] = []
    for rs in c.replicasets.values():
        if rs.namespace == namespace and rs.owner_kind == "Deployment":
            found.append(Dependent("ReplicaSet", namespace, rs.name, (
                OwnerReference("Deployment", rs.owner, _uid(c, "Deployment", namespace, rs.owner)),)))
    for worker in c.managed.values():
        identity = worker.identity
        if worker.namespace != namespace or worker.terminating:
            continue
        if identity.replicaset:
            owner = c.replicasets.get((namespace, identity.replicaset))
            found.append(Dependent("Pod", namespace, worker.name, (
                OwnerReference("ReplicaSet", identity.replicaset, owner.uid if owner else ""),)))
        elif identity.owner_kind in (*SET_KINDS, "Job"):
            found.append(Dependent("Pod", namespace, worker.name, (
                OwnerReference(identity.owner_kind, identity.owner,
                               _uid(c, identity.owner_kind, namespace, identity.owner)),)))
    for (kind, ns, name), record in c.objects.items():
        cron = c.batch.cron_owner(record) if kind == "Job" and ns == namespace else None
        if cron is not None:
            found.append(Dependent("Job", namespace, name, (
                OwnerReference("CronJob", cron.obj.metadata.name, cron.uid),)))
    return found


# --- releasing one dependent ------------------------------------------------------------------------------

def _release_replicaset(c: Controller, namespace: str, name: str) -> Release:
    rs = c.replicasets[(namespace, name)]
    (bare,) = load_objects([orphaned_manifest(rs)], source=f"replicaset {namespace}/{rs.name}").objects
    assert isinstance(bare, ReplicaSet)
    row = desired_object(bare, uid=rs.uid, created=rs.created)
    operation = Update(row) if c.store.get("ReplicaSet", namespace, rs.name) else Create(row)

    def done(written: Written) -> None:
        stored = written.get(("ReplicaSet", rs.name))
        generation = int(stored["metadata"].get("generation") or 1) if stored else 1
        c.objects[("ReplicaSet", namespace, rs.name)] = ObjectRecord(bare, generation, rs.created, rs.uid)
        c.replicasets[(namespace, rs.name)] = ReplicaSetRecord(
            bare, "ReplicaSet", rs.name, template_hash(bare.template), rs.revision, bare.replicas, rs.created,
            rs.uid)  # bare.replicas: a shared store's watch may have zeroed the record's meanwhile
        c._persisted_rs.pop((namespace, rs.name), None)  # a bare ReplicaSet's row comes from its object
    return [operation], done


def release_worker(c: Controller, worker: PodWorker) -> None:
    """A pod worker of this node is a bare pod's now."""
    reassign_worker(c, worker, PodIdentity(worker.namespace, worker.name, "Pod", worker.name))


def reassign_worker(c: Controller, worker: PodWorker, identity: PodIdentity) -> None:
    """A pod worker of this node has another owner now (a container it starts again is labelled so)."""
    worker.identity = identity
    worker._sandbox_labels.update({LABEL_OWNER: identity.owner, LABEL_OWNER_KIND: identity.owner_kind,
                                   LABEL_REPLICASET: identity.replicaset, LABEL_TEMPLATE_HASH: identity.template_hash})
    c.registry.upsert_pod(worker.record())


def _release_pod(c: Controller, namespace: str, name: str) -> Release:
    worker = c.pods[(namespace, name)]
    (loaded,) = load_objects([bare_pod_manifest(worker)], source=f"pod {namespace}/{name}").objects
    assert isinstance(loaded, Pod)
    pod = dataclasses.replace(loaded, spec=worker.spec)  # the very spec it runs: nothing to replace
    uid = worker.uid
    row = desired_object(pod, uid=uid, created=worker.created)
    operation = Update(row) if c.store.get("Pod", namespace, name) else Create(row)

    def done(written: Written) -> None:
        stored = written.get(("Pod", name))
        generation = int(stored["metadata"].get("generation") or 1) if stored else 1
        c.objects[("Pod", namespace, name)] = ObjectRecord(pod, generation, worker.created, uid)
        release_worker(c, worker)
        c._notify("Pod", namespace, name)
    return [operation], done


def released_pod_object(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A cluster's Pod object without its controller's ownerReference (the others kept), as it is: bound to its
    node, its status, its resourceVersion (the write is refused if it changed meanwhile). Pure."""
    row = copy.deepcopy(dict(stored))
    refs = [r for r in row["metadata"].get("ownerReferences") or [] if not r.get("controller")]
    if refs:
        row["metadata"]["ownerReferences"] = refs
    else:
        row["metadata"].pop("ownerReferences", None)
    return row


def _release_stored_pod(c: Controller, namespace: str, name: str) -> Release:
    stored = c.store.get("Pod", namespace, name)
    if stored is None:
        raise CannotOrphan(f'pod "{name}" is being created: delete its owner again in a moment')
    operation = Update(released_pod_object(stored))

    def done(written: Written) -> None:
        obj = written.get(("Pod", name))
        pod = c.cluster.stored.get((namespace, name))
        if pod is not None:
            pod.identity = PodIdentity(namespace, name, "Pod", name)
        if obj is not None:
            for record in load_records([obj], where="the orphaning").objects:
                c.objects[("Pod", namespace, name)] = record
        worker = c.pods.get((namespace, name))
        if worker is not None:  # it runs on this node
            release_worker(c, worker)
        c._notify("Pod", namespace, name)
    return [operation], done


def _release_job(c: Controller, namespace: str, name: str) -> Release:
    record = c.objects[("Job", namespace, name)]
    manifest = copy.deepcopy(dict(record.obj.raw))
    meta = manifest.setdefault("metadata", {})
    meta["annotations"] = {k: v for k, v in (meta.get("annotations") or {}).items() if k != SCHEDULED_ANNOTATION}
    (job,) = load_objects([manifest], source=f"job {namespace}/{name}").objects
    assert isinstance(job, Job)
    stored = c.store.get("Job", namespace, name)
    row = desired_object(job, uid=record.uid, created=record.created)
    if stored is not None and stored["metadata"].get("managedFields"):
        row["metadata"]["managedFields"] = copy.deepcopy(stored["metadata"]["managedFields"])
    operation = Update(row) if stored is not None else Create(row)

    def done(written: Written) -> None:
        new = written.get(("Job", name))
        generation = int(new["metadata"].get("generation") or 1) if new else record.generation
        c.objects[("Job", namespace, name)] = ObjectRecord(job, generation, record.created, record.uid)
        c._notify("Job", namespace, name)
    return [operation], done


def _releasers(c: Controller) -> dict[str, Callable[[Controller, str, str], Release]]:
    """How each kind of dependent is released (in a cluster a pod is its object in the shared store)."""
    return {"ReplicaSet": _release_replicaset, "Job": _release_job,
            "Pod": _release_pod if c.cluster is None else _release_stored_pod}


async def delete_orphaning(c: Controller, kind: str, namespace: str, name: str,
                           keep: tuple[str, ...] = ()) -> list[Orphaning]:
    """Deletes an object and keeps its dependents running without it (KeyError if there is no such object;
    CannotOrphan, with nothing changed, when a dependent cannot be kept here). `keep`: the finalizers that hold
    the object (its users'): it stays Terminating (meshd.controller.terminating) instead of going."""
    if kind not in ORPHANABLE:
        raise CannotOrphan(f"a {kind} has no dependents meshd orphans")
    if c.cluster is not None:
        await c.cluster.writer.drain()  # the pods created so far are written: they are released too
    for attempt in range(ATTEMPTS):
        try:
            return await _orphan_once(c, kind, namespace, name, keep)
        except Conflict:  # a released object changed meanwhile (its kubelet wrote a pod's status): nothing written
            if attempt == ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


async def _orphan_once(c: Controller, kind: str, namespace: str, name: str, keep: tuple[str, ...]) -> list[Orphaning]:
    key = (kind, namespace, name)
    pod_objects = c.pod_objects.lock if c.pod_objects is not None else contextlib.nullcontext()
    async with c._write_lock, pod_objects:  # (the pods' objects are written by the orphaning alone meanwhile)
        record = c.objects.get(key)
        if record is None:
            raise KeyError(f'{kind.lower()}s "{name}" not found')
        owner = OwnerReference(kind, name, record.uid)
        plan = garbage.orphan(owner, namespace, candidates(c, namespace))
        releasers = _releasers(c)
        problem = garbage.refusal(owner, plan, releasable=frozenset(releasers))
        if problem is not None:
            raise CannotOrphan(problem)
        operations: list[Operation] = []
        finishers = []
        for orphaning in plan:
            dependent = orphaning.dependent
            writes, done = releasers[dependent.kind](c, namespace, dependent.name)
            operations += writes
            finishers.append(done)
        stored = c.store.get(*key)
        if stored is not None:  # last: every agent following the store sees the dependents released first
            operations.append(Update(_marked(stored, keep, c.now())) if keep else Delete(*key))
        written = {(o["kind"], o["metadata"]["name"]): o for o in await c.store.transaction(operations)}
        for done in finishers:
            done(written)
        if keep:
            c.terminating[key] = record  # Terminating: its users' finalizers hold it
        c._forget(key)
        c.progress.pop((namespace, name), None)
        counts: dict[str, int] = {}
        for orphaning in plan:
            counts[orphaning.dependent.kind] = counts.get(orphaning.dependent.kind, 0) + 1
        kept = ", ".join(f"{n} {k}(s)" for k, n in sorted(counts.items())) or "no dependents"
        c.events.record(kind, namespace, name, "Normal", "Deleted", f"deleted, orphaning {kept}")
        c.kick()
        return plan


def _marked(stored: Mapping[str, Any], finalizers: tuple[str, ...], now: float) -> dict[str, Any]:
    row = copy.deepcopy(dict(stored))
    row["metadata"] = deletion.marked(row["metadata"], finalizers, time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                 time.gmtime(now)))
    return row


def dependents(c: Controller, kind: str, namespace: str, name: str) -> int:
    """How many of an object's dependents (its ReplicaSets and pods) are still there."""
    rs_names = {r.name for r in c.replicasets.values()
                if r.namespace == namespace and r.owner_kind == kind and r.owner == name}
    pods = [w for w in c.managed.values() if w.namespace == namespace and (  # in a cluster: every node's
        (w.identity.owner_kind == kind and w.identity.owner == name) or w.identity.replicaset in rs_names)]
    return len(rs_names) + len(pods)


__all__ = ["ORPHANABLE", "CannotOrphan", "bare_pod_manifest", "candidates", "delete_orphaning", "dependents",
           "orphaned_manifest", "reassign_worker", "release_worker", "released_pod_object"]

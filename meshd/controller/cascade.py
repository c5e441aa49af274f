"""Deletion with a propagationPolicy other than Background (DeleteOptions, `kubectl delete --cascade=...`):

- Orphan: a Deployment goes and its ReplicaSets stay, running their pods, as bare ReplicaSets with no
  ownerReference (one store transaction: the Deployment deleted, each ReplicaSet rewritten without its owner).
- Foreground: the object goes as in Background (its dependents are stopped), and the request waits until they
  are gone (`dependents`), so a client sees none once the delete returns. Kubernetes keeps the owner visible
  meanwhile (deletionTimestamp and the foregroundDeletion finalizer); meshd removes it at once.

The controller's helpers, as meshd.controller.sets: functions of the Controller, kept out of loop.py."""

from __future__ import annotations

import asyncio
import copy
import time
from typing import TYPE_CHECKING, Any

from meshd.controller.persist import desired_object
from meshd.controller.records import REVISION_ANNOTATION, ObjectRecord, ReplicaSetRecord
from meshd.manifests import load_objects
from meshd.manifests.hashing import template_hash
from meshd.model.objects import ReplicaSet
from meshd.store import Create, Delete, Operation, Update

if TYPE_CHECKING:
    from meshd.controller.loop import Controller

ORPHANABLE = ("Deployment",)  # whose dependents meshd can keep running without their owner
FOREGROUND_WAIT = 120.0  # seconds a Foreground delete waits for the dependents before it answers anyway


def orphaned_manifest(rs: ReplicaSetRecord) -> dict[str, Any]:
    """A Deployment's ReplicaSet as a bare one: its labels, template and replica count, no owner. Pure."""
    manifest = copy.deepcopy(dict(rs.rs.raw))
    meta = {k: v for k, v in (manifest.get("metadata") or {}).items() if k in ("name", "namespace", "labels",
                                                                            "annotations")}
    meta["annotations"] = {**(meta.get("annotations") or {}), REVISION_ANNOTATION: str(rs.revision)}
    manifest.update(apiVersion="apps/v1", kind="ReplicaSet", metadata=meta)
    manifest.setdefault("spec", {})["replicas"] = rs.replicas
    return manifest


async def delete_orphaning(c: Controller, kind: str, namespace: str, name: str) -> None:
    """Deletes a Deployment and keeps its ReplicaSets and their pods (KeyError if there is none)."""
    key = (kind, namespace, name)
    if kind not in ORPHANABLE:
        raise ValueError(f"meshd orphans the dependents of {', '.join(ORPHANABLE)} only, not of a {kind}")
    async with c._write_lock:
        if key not in c.objects:
            raise KeyError(f'deployments.apps "{name}" not found')
        kept: list[tuple[ReplicaSetRecord, ReplicaSet]] = []
        operations: list[Operation] = [Delete(*key)] if c.store.get(*key) is not None else []
        for rs in c.owned_replicasets(namespace, name):
            (bare,) = load_objects([orphaned_manifest(rs)], source=f"replicaset {namespace}/{rs.name}").objects
            assert isinstance(bare, ReplicaSet)
            row = desired_object(bare, uid=rs.uid, created=rs.created)
            operations.append(Update(row) if c.store.get("ReplicaSet", namespace, rs.name) else Create(row))
            kept.append((rs, bare))
        written = {o["metadata"]["name"]: o for o in await c.store.transaction(operations)
                   if o.get("kind") == "ReplicaSet"}
        for rs, bare in kept:
            generation = int(written[rs.name]["metadata"].get("generation") or 1) if rs.name in written else 1
            c.objects[("ReplicaSet", namespace, rs.name)] = ObjectRecord(bare, generation, rs.created, rs.uid)
            c.replicasets[(namespace, rs.name)] = ReplicaSetRecord(
                bare, "ReplicaSet", rs.name, template_hash(bare.template), rs.revision, bare.replicas, rs.created,
                rs.uid)  # bare.replicas: a shared store's watch may have zeroed the record's meanwhile
            c._persisted_rs.pop((namespace, rs.name), None)  # a bare ReplicaSet's row comes from its object
        c._forget(key)
        c.progress.pop((namespace, name), None)
        c.events.record(kind, namespace, name, "Normal", "Deleted",
                        f"deleted, orphaning {len(kept)} ReplicaSet(s)")
        c.kick()


def dependents(c: Controller, kind: str, namespace: str, name: str) -> int:
    """How many of an object's dependents (its ReplicaSets and pods) are still there."""
    rs_names = {r.name for r in c.replicasets.values()
                if r.namespace == namespace and r.owner_kind == kind and r.owner == name}
    pods = [w for w in c.pods.values() if w.namespace == namespace and (
        (w.identity.owner_kind == kind and w.identity.owner == name) or w.identity.replicaset in rs_names)]
    return len(rs_names) + len(pods)


async def wait_for_dependents(c: Controller, kind: str, namespace: str, name: str,
                              timeout: float = FOREGROUND_WAIT) -> bool:
    """Waits until the dependents of a deleted object are gone; False if they were not by `timeout`."""
    changed = asyncio.Event()
    stop = c.watch(lambda *_: changed.set())
    deadline = time.monotonic() + timeout
    try:
        while dependents(c, kind, namespace, name):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), min(left, 1.0))
            except TimeoutError:
                pass
        return True
    finally:
        stop()


__all__ = ["ORPHANABLE", "delete_orphaning", "dependents", "orphaned_manifest", "wait_for_dependents"]

"""Terminating objects: an object a DELETE marked (metadata.deletionTimestamp, finalizers: meshd.controller.deletion)
stays in the store and is served (Terminating, `kubectl get` shows it) while the controllers treat it as deleted: its
record moves from Controller.objects to Controller.terminating, so its dependents go as in a Background delete (a
Deployment's ReplicaSets and their pods, a set's or Job's pods, a CronJob's Jobs); a Service is still routed and
resolved until it is removed, as in Kubernetes. The garbage collector's part runs where the controllers do (the leader
of a cluster): once no dependent is left it takes the foregroundDeletion finalizer off, and once no finalizer is left
it removes the object. Every agent of a cluster learns of a marked object from the store (meshd.cluster.follow calls
`observed`).

The controller's helpers, as meshd.controller.cascade: functions of the Controller, kept out of loop.py."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from meshd.controller import deletion
from meshd.controller.cascade import dependents
from meshd.controller.persist import load_records
from meshd.controller.clusterip import IP_ADDRESS_KIND, address_releases
from meshd.controller.services import unpublish_service
from meshd.model.endpoints import ServiceKey
from meshd.model.objects import Service
from meshd.store import Conflict, Delete, NotFound, Operation, StoreError, Update, object_key

if TYPE_CHECKING:
    from meshd.controller.loop import Controller
    from meshd.controller.records import ReplicaSetRecord

log = logging.getLogger(__name__)

Key = tuple[str, str, str]
PASS_INTERVAL = 1.0  # seconds between the garbage collector's passes when nothing wakes it
MARK_ATTEMPTS = 5  # a DELETE has no precondition to fail: a status write racing its mark is not the client's 409


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def held(c: Controller, key: Key) -> bool:
    return key in c.terminating


def graceful_pods(c: Controller) -> bool:
    """Whether a user's Pod is held Terminating until its worker stopped: on one node (in a cluster the
    kubelet confirms a Pod object's deletion: meshd.cluster.pods)."""
    return c.cluster is None and c.pod_objects is not None


def hold(c: Controller, key: Key) -> None:
    """The object is Terminating: the controllers no longer see it (its dependents go), the API still serves it.
    A Service is still routed and resolved until it is removed, as kube-proxy and CoreDNS keep serving a Service
    object with a deletionTimestamp."""
    record = c.objects.get(key)
    if record is not None:
        c.terminating[key] = record
        c._forget(key, unpublish=key[0] != "Service")
        if key[0] == "Deployment":
            c.progress.pop(key[1:], None)
            for rs in c.owned_replicasets(*key[1:]):  # Terminating too in a Foreground delete (deletion.py)
                c._notify("ReplicaSet", rs.namespace, rs.name)
    c.kick()


def release(c: Controller, key: Key) -> None:
    """The Terminating object was removed (a Service stops being served, unless one of its name was made since)."""
    record = c.terminating.pop(key, None)
    if record is not None:
        if isinstance(record.obj, Service) and key not in c.objects:
            unpublish_service(c, key[1], key[2])
        c._notify(*key)
        c.kick()


async def mark(c: Controller, kind: str, namespace: str, name: str, finalizers: tuple[str, ...]) -> Mapping[str, Any]:
    """Writes the deletionTimestamp and `finalizers` into the stored object and holds it (KeyError if it is not
    stored). Answers the object as stored."""
    key = (kind, namespace, name)
    async with c._write_lock:
        for attempt in range(MARK_ATTEMPTS):
            stored = c.store.get(*key)
            if stored is None:
                raise KeyError(f'{kind.lower()}s "{name}" not found')
            row = copy.deepcopy(dict(stored))
            row["metadata"] = deletion.marked(row["metadata"], finalizers, rfc3339(c.now()))
            try:
                (written,) = await c.store.transaction([Update(row)])
                break
            except Conflict:  # a status write (the rollout's progress) came between: marked again on top of it
                if attempt == MARK_ATTEMPTS - 1:
                    raise
        hold(c, key)
        c._notify(*key)
    c.events.record(kind, namespace, name, "Normal", "Deleting",
                    f"deletion requested: waiting for {', '.join(finalizers) or 'no finalizer'}")
    await finish(c)  # a Foreground delete of an object without dependents goes at once
    return written


def held_back(c: Controller, keys: list[Key]) -> dict[Key, Update]:
    """Of objects a controller is about to delete (a namespace's content, `meshd delete`), those a finalizer
    holds, each with the write that marks it instead (the caller holds the write lock, writes them with its
    transaction, then calls `hold`)."""
    out = {}
    for key in keys:
        stored = c.store.get(*key) if key[0] in deletion.TERMINABLE else None
        if stored is None or deletion.terminating(stored["metadata"]) or not deletion.finalizers_of(stored["metadata"]):
            continue
        row = copy.deepcopy(dict(stored))
        row["metadata"] = deletion.marked(row["metadata"], deletion.finalizers_of(row["metadata"]), rfc3339(c.now()))
        out[key] = Update(row)
    return out


async def edit(c: Controller, key: Key, new_meta: Mapping[str, Any],
               check: Callable[[Mapping[str, Any]], None]) -> Mapping[str, Any] | None:
    """A write to a Terminating object (its labels, annotations, finalizers: meshd.controller.deletion checked
    it); removes the object when no finalizer is left, as the API server does. `check(stored)` runs under the
    write lock and refuses a stale write by raising. Answers the object as stored, or None once it is removed."""
    async with c._write_lock:
        stored = c.store.get(*key)
        if stored is None:
            raise KeyError(f'{key[0].lower()}s "{key[2]}" not found')
        check(stored)
        row = copy.deepcopy(dict(stored))
        row["metadata"] = deletion.edited_metadata(stored["metadata"], new_meta)
        if deletion.finished(row["metadata"]) and not _stopping(c, key):
            await c.store.transaction(removal(c, key, stored["metadata"]))
            release(c, key)
            c.events.record(*key, "Normal", "Deleted", "no finalizer left: deleted")
            return None
        (written,) = await c.store.transaction([Update(row)])
        c._notify(*key)
        return written


def stopping_in_the_foreground(c: Controller, rs: ReplicaSetRecord) -> bool:
    """Whether a Deployment's ReplicaSet stays while its pods stop: its Deployment is deleted in the foreground
    (the garbage collector deletes the ReplicaSet in the foreground too: meshd.controller.deletion)."""
    owner = c.store.get(rs.owner_kind, rs.namespace, rs.owner) if rs.owner_kind == "Deployment" else None
    return (owner is not None and deletion.FOREGROUND in deletion.finalizers_of(owner["metadata"])
            and deletion.terminating(owner["metadata"])
            and any(w.namespace == rs.namespace and w.identity.replicaset == rs.name for w in c.managed.values()))


def _stopping(c: Controller, key: Key) -> bool:
    """A Terminating user's Pod whose containers still run: it stays until they stopped, finalizers or not."""
    return key[0] == "Pod" and (key[1], key[2]) in c.pods


def removal(c: Controller, key: Key, meta: Mapping[str, Any]) -> list[Operation]:
    """The writes that remove a Terminating object (no finalizer left; a Pod: its worker stopped): a Service's
    address goes with it, as in Controller.delete_many."""
    services = [ServiceKey(key[1], key[2])] if key[0] == "Service" else []
    return [Delete(*key, str(meta["resourceVersion"])), *address_releases(c.store.list(IP_ADDRESS_KIND), services)]


def left(c: Controller, key: Key, record: Any) -> int:
    """How many dependents of a Terminating object are still there (a CronJob's: its Jobs and their pods)."""
    kind, namespace, name = key
    if kind == "CronJob":
        jobs = [r.obj.metadata.name for r in c.batch.cron_jobs(record.obj)]
        return len(jobs) + sum(dependents(c, "Job", namespace, job) for job in jobs)
    return dependents(c, kind, namespace, name)


async def finish(c: Controller) -> None:
    """One pass of the garbage collector over the Terminating objects (the leader's: the others follow)."""
    if not c.leading:
        return
    for key in list(c.terminating):
        record = c.terminating.get(key)
        if record is None:
            continue
        try:
            await _finish_one(c, key, record)
        except (Conflict, NotFound):  # changed meanwhile (a write, another agent): the next pass sees it
            c.kick()
        except StoreError as error:
            log.warning("could not finish the deletion of %s %s/%s: %s", *key, error)


async def _finish_one(c: Controller, key: Key, record: Any) -> None:
    stored = c.store.get(*key)
    if stored is None:
        release(c, key)
        return
    if _stopping(c, key):
        return  # a user's Pod goes once its worker stopped (its grace period) and no finalizer holds it
    meta = stored["metadata"]
    if key[0] == "CronJob":  # the garbage collector deletes a Terminating CronJob's Jobs
        jobs = [("Job", key[1], r.obj.metadata.name) for r in c.batch.cron_jobs(record.obj)]
        if jobs:
            await c.delete_many(jobs)
    async with c._write_lock:
        stored = c.store.get(*key)
        if stored is None:
            release(c, key)
            return
        meta = stored["metadata"]
        remaining = deletion.without_foreground(meta, left(c, key, record))
        if remaining is not None:
            row = copy.deepcopy(dict(stored))
            row["metadata"] = {k: v for k, v in meta.items() if k != "finalizers"}
            if remaining:
                row["metadata"]["finalizers"] = list(remaining)
            (stored,) = await c.store.transaction([Update(row)])
            meta = stored["metadata"]
            c._notify(*key)
        if deletion.finished(meta):
            await c.store.transaction(removal(c, key, meta))
            release(c, key)
            c.events.record(*key, "Normal", "Deleted", "dependents gone, no finalizer left: deleted")


def observed(c: Controller, obj: Mapping[str, Any], deleted: bool) -> bool:
    """A store event (another agent's write, or this one's coming back): a marked object is held, a removed one
    released. Whether it was one of those."""
    key = object_key(obj)
    if key[0] not in deletion.TERMINABLE:
        return False
    if deleted:
        if key in c.terminating:
            release(c, key)
            return True
        return False
    if not deletion.terminating(obj.get("metadata") or {}):
        return False
    if key not in c.terminating:
        if key not in c.objects:
            loaded = load_records([obj], where="the shared store").objects
            if not loaded:
                return False
            c.objects[key] = loaded[0]
        hold(c, key)
    c._notify(*key)
    return True


def load(c: Controller) -> None:
    """At start: the objects the store holds Terminating are held again (an agent restart keeps them so)."""
    kinds = (*deletion.TERMINABLE, "Pod") if graceful_pods(c) else deletion.TERMINABLE
    for key in [k for k in c.objects if k[0] in kinds]:
        stored = c.store.get(*key)
        if stored is not None and deletion.terminating(stored["metadata"]):
            hold(c, key)


async def run(c: Controller) -> None:
    """The garbage collector's passes for Terminating objects, for the controller's life (supervised)."""
    wake = asyncio.Event()
    stop = c.watch(lambda *_: wake.set())
    try:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PASS_INTERVAL):
                    await wake.wait()
            wake.clear()
            if c.terminating:
                await finish(c)
    finally:
        stop()


__all__ = ["edit", "finish", "graceful_pods", "held", "held_back", "hold", "left", "load", "mark", "observed",
           "release", "removal", "run", "stopping_in_the_foreground"]

"""A standalone agent's pods as `v1 Pod` objects of its store (SQLite), as a cluster's kubelet keeps them in etcd:
every pod its controllers run has an object with its spec (bound to this node) and the status its worker reports,
written when something a user sees changed; a controller's pod's object goes when its worker went (a user's bare Pod
is the user's object: only its status is written). The writes are batched (a burst of changes is one transaction)
and never on the pod workers' path; the API lists the pods from these objects (meshd.api.kube.node_pods).

The object of a pod is the one a cluster's leader writes (meshd.cluster.binding.pod_manifest); its status is the
kubelet's rendering (meshd.cluster.kubelet.status_of)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from meshd.cluster import binding
from meshd.cluster.nodes import parse_time
from meshd.cluster.pods import owner_of, pod_spec_of
from meshd.cluster.storedadoption import Adoption, adoption_plan
from meshd.controller.adoption import by_pod, created_of, remove_unwanted, take_over
from meshd.controller.pod import PodWorker
from meshd.controller.workers import sandbox_labels
from meshd.store import AlreadyExists, Conflict, Create, Delete, NotFound, Operation, StoreError, Update
from meshd.tasks import done_within

if TYPE_CHECKING:
    from meshd.controller.loop import Controller

log = logging.getLogger(__name__)

WRITE_BATCH = 64
SYNC_EVERY = 2.0  # seconds: a full comparison of the workers and the objects, besides every change


def stored_status(status: Mapping[str, Any]) -> dict[str, Any]:
    """The status as the object keeps it: without what probes last said (it changes every period). Pure."""
    return binding.node_status(status, ready_since=None)


def ended_status(status: Mapping[str, Any]) -> dict[str, Any]:
    """A stopped pod's status in a terminal phase, as a kubelet leaves a deleted pod's: Succeeded when every
    container exited 0, else Failed. Pure."""
    if status.get("phase") in ("Succeeded", "Failed"):
        return dict(status)
    exits = [((s.get("state") or {}).get("terminated") or {}).get("exitCode")
             for s in status.get("containerStatuses") or []]
    return {**status, "phase": "Succeeded" if exits and all(e == 0 for e in exits) else "Failed"}


def with_status(obj: Mapping[str, Any], status: Mapping[str, Any], *, terminating_since: str | None
                ) -> dict[str, Any] | None:
    """The object with this status (and deletionTimestamp while its pod stops), or None when it says so already.
    Pure."""
    meta = dict(obj.get("metadata") or {})
    deleting = meta.get("deletionTimestamp")
    wanted = deleting or terminating_since
    if obj.get("status") == status and deleting == wanted:
        return None
    if wanted:
        meta["deletionTimestamp"] = wanted
    return {**obj, "metadata": meta, "status": dict(status)}


def _key(operation: Operation) -> tuple[str, str]:
    if isinstance(operation, Delete):
        return operation.namespace, operation.name
    return operation.obj["metadata"]["namespace"], operation.obj["metadata"]["name"]


def admitting_first(operations: list[Operation]) -> tuple[list[Operation], list[Operation]]:
    """The writes of the pods whose object is created (their pods wait for it to be admitted; an older pod's
    object that goes first stays before it), and the others, each in their order. Pure."""
    new = {_key(o) for o in operations if isinstance(o, Create)}
    return [o for o in operations if _key(o) in new], [o for o in operations if _key(o) not in new]


class PodObjects:
    def __init__(self, controller: Controller, node: str, render: Callable[..., dict[str, Any]],
                 clock: Callable[[], float]) -> None:
        """`render(worker, node=...)`: a worker's v1 Pod as the API shows it (meshd.api.kube.pod)."""
        self.c = controller
        self.node = node
        self._render = render
        self._clock = clock
        self._changed: set[tuple[str, str]] = set()
        self._seen: set[tuple[str, str]] = set()  # workers written once at least (later: when they change)
        self._final: dict[tuple[str, str], dict[str, Any]] = {}  # a stopped pod's last status, for its held object
        self._wake = asyncio.Event()
        self._waiting = False  # a new pod waits for its object to be admitted: written without the settle
        self.lock = asyncio.Lock()  # held by a flush; a write of the same objects (an orphaning) takes it too
        self.failing = ""
        controller.watch(self._on_change)

    def _on_change(self, kind: str, namespace: str, name: str) -> None:
        if kind == "Pod":
            self._changed.add((namespace, name))
            self._wake.set()

    def kick(self) -> None:
        """Writes at once (a new pod waits for its object to be admitted: meshd.controller.admission)."""
        self._waiting = True
        self._wake.set()

    def stopped(self, worker: PodWorker) -> None:
        """The worker stopped and goes: a user's Pod object a finalizer still holds keeps its last status (its
        containers terminated, not Ready), as a kubelet writes a deleted pod's final status."""
        self._final[(worker.namespace, worker.name)] = ended_status(stored_status(self.status(worker)))
        self._changed.add((worker.namespace, worker.name))
        self._wake.set()

    def status(self, worker: PodWorker) -> dict[str, Any]:
        """A worker's status as the API shows it (live: with what its probes last said)."""
        return binding.node_status(self._render(worker, node=self.node)["status"],
                                   ready_since=worker.ready_since if worker.ready else None, live=True)

    # --- adoption ----------------------------------------------------------------------------------

    def adopt(self, observed: list[Any]) -> None:
        """At start: every stored Pod is a pod to keep, under its name and uid, with the containers found of it, or
        started again without (meshd.cluster.storedadoption); containers without an object are adopted by their
        labels; every other container is removed (and the objects of the pods not kept go with the next flush)."""
        c = self.c
        groups = by_pod(observed)
        stored = dict(c.store.scan("Pod"))
        plan = adoption_plan(stored, {key: len(containers) for key, containers in groups.items()})
        unwanted: list[Any] = []
        for key, action in plan.stored:
            obj, containers = stored[key], groups.get(key, [])
            meta = obj.get("metadata") or {}
            created = created_of(containers) or parse_time(meta.get("creationTimestamp")) or self._clock()
            labels = sandbox_labels(binding.identity_of(obj), agent_id=c.agent_id, created=created)  # whose it is
            kept = action is not Adoption.DROP and take_over(c, key, labels, containers, created=created,
                                                             uid=str(meta.get("uid") or ""))
            if kept and action is Adoption.START:
                log.info("starting pod %s/%s again (its object is stored, no container of it runs)", *key)
            elif not kept:
                unwanted.extend(containers)
        for key in plan.by_labels:
            containers = groups[key]
            if not take_over(c, key, containers[0].labels, containers, created=created_of(containers) or self._clock()):
                unwanted.extend(containers)
        remove_unwanted(c, unwanted)

    # --- the writes --------------------------------------------------------------------------------

    def plan(self) -> list[Operation]:
        """The writes that bring the objects in line with the workers (the changed ones, the new ones, the gone)."""
        store, pods = self.c.store, self.c.pods
        changed, self._changed = self._changed, set()
        stored = dict(store.scan("Pod"))  # the kind's index, in key order
        keys = changed | {k for k in pods if k not in stored or k not in self._seen} | {
            k for k, o in stored.items() if k not in pods and binding.owned_pod(o)}
        self._seen = {k for k in self._seen if k in pods} | {k for k in keys if k in pods}
        operations: list[Operation] = []
        for key in sorted(keys):
            worker, obj, final = pods.get(key), stored.get(key), self._final.pop(key, None)
            if worker is None:
                if obj is not None and binding.owned_pod(obj):  # its worker went: so does the object
                    operations.append(Delete("Pod", key[0], key[1], obj["metadata"]["resourceVersion"]))
                elif obj is not None and final is not None and binding.deleting(obj):  # held by a finalizer
                    updated = with_status(obj, final, terminating_since=None)
                    operations.extend([Update(updated)] if updated is not None else [])
                continue
            status = stored_status(self.status(worker))
            since = binding.rfc3339(self._clock()) if worker.terminating else None
            owned = worker.identity.owner_kind != "Pod"
            if obj is not None and owned and obj["metadata"].get("uid") != worker.uid:
                # a pod of the same name replaced it (a StatefulSet's): the old object goes, the new one comes
                operations.append(Delete("Pod", key[0], key[1], obj["metadata"]["resourceVersion"]))
                obj = None
            if obj is None:
                if not owned:
                    continue  # a user's Pod: the user's object (not written yet, or deleted and stopping)
                operations.append(Create(self._manifest(worker, status)))
            else:
                updated = with_status(obj, status, terminating_since=since)
                if updated is not None:
                    operations.append(Update(updated))
        return operations

    def _manifest(self, worker: PodWorker, status: dict[str, Any]) -> dict[str, Any]:
        identity = worker.identity
        manifest = binding.pod_manifest(identity, pod_spec_of(self.c, identity, worker.spec),
                                        labels=worker.labels, annotations=worker.annotations, created=worker.created,
                                        uid=worker.uid,
                                        owner=owner_of(self.c, identity), node=self.node)
        manifest["status"] = status
        if worker.terminating:
            manifest["metadata"]["deletionTimestamp"] = binding.rfc3339(self._clock())
        return manifest

    async def flush(self) -> None:
        """Writes what changed, WRITE_BATCH to a transaction; a write another one raced is planned again. The new
        pods' objects go first, and the controller is kicked once they are stored (it admits their pods), before
        the other pods' status is written."""
        async with self.lock:
            new, other = admitting_first(self.plan())
            if new and await self._write(new):
                self.c.kick()
            if not self.failing:
                await self._write(other)
            else:  # the store refuses writes: the others are planned again too
                for operation in other:
                    self._retry(operation)

    async def _write(self, operations: list[Operation]) -> bool:
        """Whether a new pod's object was written."""
        created = False
        for start in range(0, len(operations), WRITE_BATCH):
            batch = operations[start:start + WRITE_BATCH]
            try:
                await self.c.store.transaction(batch)
                created = created or any(isinstance(o, Create) for o in batch)
            except (AlreadyExists, Conflict, NotFound):
                for operation in batch:  # one raced a user's write: the others go alone, that one next time
                    try:
                        await self.c.store.transaction([operation])
                        created = created or isinstance(operation, Create)
                    except (AlreadyExists, Conflict, NotFound):
                        self._retry(operation)
            except StoreError as error:
                if not self.failing:
                    log.warning("cannot write the pods' objects (trying again): %s", error)
                self.failing = str(error)
                for operation in operations[start:]:
                    self._retry(operation)
                return created
        self.failing = ""
        return created

    def _retry(self, operation: Operation) -> None:
        self._changed.add(_key(operation))

    async def run(self, settle: float = 0.05, admit: float = 0.005) -> None:
        """`settle`: how long a burst of changes gathers into one transaction; `admit`: the same for new pods that
        wait for their objects (a scale-up's slow-start batches are made within it)."""
        while True:
            await done_within(self._wake.wait(), SYNC_EVERY)
            self._wake.clear()
            await asyncio.sleep(admit if self._waiting else settle)
            self._waiting = False
            await self.flush()
            if self.failing:
                await asyncio.sleep(1.0)


__all__ = ["PodObjects", "admitting_first", "ended_status", "stored_status", "with_status"]

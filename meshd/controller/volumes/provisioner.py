"""The volume controller: the binder and provisioner of the storage objects (the decisions of
meshd.controller.volumes.binding, carried out), the kubernetes.io/pvc-protection finalizer (a claim a pod uses is
deleted once no pod uses it), and the gate a pod passes before it starts: its claims exist and are bound, its
hostPaths pass their type checks, and a ReadWriteOncePod claim has no other pod. The writes go through the
controller's `apply` and `delete_many`, so they are persisted like a user's."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from meshd.controller.volumes.binding import (
    BIND_COMPLETED,
    BOUND_BY_CONTROLLER,
    PROVISIONED_BY,
    Action,
    Bind,
    ClaimKey,
    Provision,
    Reclaim,
    claim_state,
    plan,
    volume_phase,
)
from meshd.controller.persist import rfc3339
from meshd.controller.volumes.hostpath import prepare
from meshd.controller.volumes.nodelocal import consumer_nodes, node_affinity, volume_nodes
from meshd.controller.volumes.state import PROTECTION, VolumeStatus, claims_used, storage_state
from meshd.driver.base import DriverError, MountSource, needs_source
from meshd.driver.volumes import LABEL_CLAIM, volume_backend
from meshd.manifests import ManifestError
from meshd.manifests.quantity import format_memory
from meshd.manifests.storage import LOCAL_PROVISIONER
from meshd.model.objects import PersistentVolume, PersistentVolumeClaim
from meshd.store import StoreError

log = logging.getLogger(__name__)

PVC = "PersistentVolumeClaim"
PV = "PersistentVolume"
RETRY_SECONDS = 5.0
HOST_PATH_FRESH = 2.0  # seconds a hostPath's or a volume's check is trusted
CHECKING = "checking"  # mounts_for's problem while a hostPath is being looked at (off the event loop)
SOURCE = "the volume controller"
RELEASED_GRACE = 5.0  # seconds a node's volume is seen Released before that node removes it (in a cluster)


class VolumeController:
    def __init__(self, controller: Any) -> None:  # a meshd.controller.loop.Controller
        self.controller = controller
        self.status = VolumeStatus()
        self.backend = volume_backend(controller.driver, controller.state_dir)
        self._running = False
        self._reclaiming = False
        self._released: dict[str, float] = {}  # this node's volumes Released (in a cluster) -> since when
        self._failed_at: dict[Action, float] = {}
        self._reported: dict[tuple[str, str, str], str] = {}  # object -> the last reason an event gave
        self._host_paths: dict[tuple[str, str], tuple[float, str | None]] = {}  # (path, type) -> (when, problem)
        self._checking: set[tuple[str, str]] = set()
        self._signature: list[Any] = []

    # --- adoption ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """After the controller loaded the store: claims whose deletion waits for a pod stay so, and the storage
        of every provisioned volume is looked for (by the Docker volumes' labels, or the directories)."""
        c = self.controller
        for stored in c.store.list(PVC):
            meta = stored["metadata"]
            if meta.get("deletionTimestamp"):
                self.status.terminating.add((meta["namespace"], meta["name"]))
        try:
            held = await self.backend.list()
        except DriverError as error:
            log.warning("volumes: cannot list the %s volumes (%s)", self.backend.kind, error)
            return
        provisioned = {self._resolved(r.obj.volume_handle): name for (kind, _, name), r in c.objects.items()
                       if kind == PV and isinstance(r.obj, PersistentVolume) and r.obj.csi_driver == LOCAL_PROVISIONER
                       and self._here(r.obj)}
        held = {self._resolved(handle): name for handle, name in held.items()}
        made = await asyncio.to_thread(self._made_here)
        for handle, name in provisioned.items():
            volume = c.objects[(PV, "", name)].obj
            if handle not in held and (volume_nodes(volume.raw) is None or name in made):  # else: made at admission
                self.status.failed[name] = f"its storage {handle} ({self.backend.kind}) is gone"
                log.warning("volumes: PersistentVolume %s: its storage %s is gone", name, handle)
        for handle, name in held.items():
            if handle not in provisioned:
                log.warning("volumes: %s (PersistentVolume %s) has no PersistentVolume in the store: kept with its "
                            "data (remove it by hand if it is not wanted)", handle, name)

    # --- reconciliation (called at the end of each controller pass: cheap and synchronous) -------------

    def reconcile(self) -> None:
        c = self.controller
        state = storage_state(c)
        now = c.now()
        signature: list[Any] = []
        for key, claim in state.claims.items():
            s = claim_state(claim, state.volumes, state.classes, has_consumer=key in state.consumers)
            signature.append((PVC, key, s, claim.terminating))
            if s.phase == "Pending" and s.reason != "Provisioning":
                warning = s.reason in ("ProvisioningFailed", "FailedBinding")
                self._event(PVC, *key, "Warning" if warning else "Normal", s.reason, s.message)
        signature += [(PV, name, volume_phase(v, state.claims), state.failed.get(name)) for name, v in state.volumes.items()]
        signature += [(k, r.generation) for k, r in c.objects.items() if k[0] in (PVC, PV, "StorageClass")]
        if signature != self._signature:  # API watchers of claims, volumes and classes see the change
            self._signature = signature
            c._notify(PVC, "", "")
        for worker in c.pods.values():  # a pod adopted before its claim could be resolved gets its sources now
            if worker.scheduled and any(needs_source(worker.spec.volumes, v.name) and v.name not in worker.volume_mounts
                                        for v in worker.spec.volumes):
                mounts, problem = self.mounts_for(worker, check=False)
                if not problem:
                    worker.volume_mounts = mounts
        nodes = None if c.cluster is None else consumer_nodes(
            (w.namespace, w.node, w.spec, w.terminating) for w in sorted(c.managed.values(), key=lambda w: w.created))
        actions = [a for a in plan(list(state.claims.values()), state.volumes, state.classes,
                                   consumers=state.consumers, consumer_nodes=nodes)
                   if now - self._failed_at.get(a, -RETRY_SECONDS) >= RETRY_SECONDS
                   and not (isinstance(a, Reclaim) and nodes is not None
                            and volume_nodes(state.volumes[a.volume].raw) is not None)]  # its node's: reclaim_here
        finalize = sorted(k for k, claim in state.claims.items() if claim.terminating and k not in state.consumers)
        if self._running or not (actions or finalize):
            return
        self._running = True
        c._tasks.spawn(self._run(actions, finalize), name="volume controller")

    async def _run(self, actions: list[Action], finalize: list[ClaimKey]) -> None:
        c = self.controller
        try:
            for key in finalize:  # the pvc-protection finalizer: the last pod using the claim is gone
                self.status.terminating.discard(key)
                await c.delete_many([(PVC, *key)], protect=False)
            for action in actions:
                try:
                    await self._carry_out(action)
                    self._failed_at.pop(action, None)
                except (DriverError, StoreError, ManifestError, OSError, KeyError) as error:
                    self._failed(action, str(error))
        finally:
            self._running = False
            c.kick()

    def _failed(self, action: Action, message: str) -> None:
        c = self.controller
        self._failed_at[action] = c.now()
        c._call_at(c.now() + RETRY_SECONDS)
        if isinstance(action, Reclaim):
            self.status.failed[action.volume] = message
            self._event(PV, "", action.volume, "Warning", "VolumeFailedDelete", message)
        else:
            self._event(PVC, *action.claim, "Warning", "ProvisioningFailed", message)
        log.warning("volumes: %s failed: %s", action, message)

    async def _carry_out(self, action: Action) -> None:
        c = self.controller
        if isinstance(action, Reclaim):
            await self._reclaim(action.volume)
            return
        claim = c.objects[(PVC, *action.claim)]
        obj: PersistentVolumeClaim = claim.obj
        if isinstance(action, Bind):
            volume: PersistentVolume = c.objects[(PV, "", action.volume)].obj
            await self._write([_bound_volume(volume.raw, action.claim, claim.uid),
                               _bound_claim(obj, action.volume, volume.storage_class_name)])
            return
        if action.node:  # in a cluster: named here, made by that node's agent when it admits the pod
            handle = self.backend.handle_for(action.volume)
            await self._write([_provisioned_volume(obj, action, claim.uid, handle, self.backend.kind),
                               _bound_claim(obj, action.volume, action.class_name)])
            self._event(PVC, *action.claim, "Normal", "ProvisioningSucceeded",
                        f"Successfully provisioned volume {action.volume} on node {action.node}")
            return
        handle = await self.backend.create(action.volume, {LABEL_CLAIM: "/".join(action.claim)})
        try:
            await self._write([
                _provisioned_volume(obj, action, claim.uid, handle, self.backend.kind),
                _bound_claim(obj, action.volume, action.class_name),
            ])
        except BaseException:
            await self.backend.remove(handle)
            raise
        self._event(PVC, *action.claim, "Normal", "ProvisioningSucceeded",
                    f"Successfully provisioned volume {action.volume}")

    async def _reclaim(self, name: str) -> None:
        c = self.controller
        volume: PersistentVolume = c.objects[(PV, "", name)].obj
        if volume.csi_driver != LOCAL_PROVISIONER:
            self.status.failed[name] = ("the volume is kept: meshd deletes only the volumes it provisioned "
                                        "(reclaimPolicy Delete of a hostPath or local volume)")
            return
        if self._here(volume):
            await self.backend.remove(volume.volume_handle)
        else:
            log.warning("volumes: PersistentVolume %s: its storage %s stays on node %s (meshd removes a volume's "
                        "storage only on the node that holds it)", name, volume.volume_handle,
                        ", ".join(sorted(volume_nodes(volume.raw) or ())))
        await c.delete_many([(PV, "", name)])
        self.status.failed.pop(name, None)

    async def _write(self, documents: list[dict[str, Any]]) -> None:
        await self.controller.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": documents}),
                                    source=SOURCE, carry_live=False)

    def _event(self, kind: str, namespace: str, name: str, type_: str, reason: str, message: str) -> None:
        key = (kind, namespace, name)
        if self._reported.get(key) == message:
            return
        self._reported[key] = message
        self.controller.events.record(kind, namespace, name, type_, reason, message)

    # --- the pvc-protection finalizer ---------------------------------------------------------------------

    async def protect(self, keys: list[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
        """Of the objects about to be deleted, the claims a pod uses: they stay (Terminating, with a
        deletionTimestamp in the store, so an agent restart keeps it so) until no pod uses them."""
        c = self.controller
        used = {key for (namespace, _), worker in c.managed.items() for key in claims_used(namespace, worker.spec)}
        kept = {k for k in keys if k[0] == PVC and (k[1], k[2]) in used}
        for key in sorted(kept):
            stored = c.store.get(*key)
            if stored is not None and not stored["metadata"].get("deletionTimestamp"):
                marked = json.loads(json.dumps(stored))
                marked["metadata"].update(deletionTimestamp=rfc3339(c.now()), finalizers=[PROTECTION])
                await c.store.update(marked)
        self.status.terminating |= {(k[1], k[2]) for k in kept}
        return kept

    # --- the pod's gate -----------------------------------------------------------------------------------

    def mounts_for(self, worker: Any, *, check: bool = True) -> tuple[dict[str, MountSource], str]:
        """The sources of a pod's claim and hostPath volumes, or ({}, why it cannot start yet): CHECKING while
        a hostPath is being looked at. `check=False` (a pod adopted running) skips the hostPath checks."""
        c = self.controller
        mounts: dict[str, MountSource] = {}
        for volume in worker.spec.volumes:
            if volume.host_path is not None:
                problem = self._host_path(volume.host_path.path, volume.host_path.type) if check else None
                if problem:
                    return {}, problem if problem == CHECKING else \
                        f'MountVolume.SetUp failed for volume "{volume.name}": {problem}'
                mounts[volume.name] = MountSource("bind", volume.host_path.path)
                continue
            source = volume.persistent_volume_claim
            if source is None:
                continue
            name = source.claim_name
            record = c.objects.get((PVC, worker.namespace, name))
            if record is None:
                return {}, f'persistentvolumeclaim "{name}" not found'
            if check and (worker.namespace, name) in self.status.terminating:  # a running pod keeps its claim
                return {}, f'persistentvolumeclaim "{name}" is being deleted'
            state = storage_state(c)
            claim = state.claims[(worker.namespace, name)]
            s = claim_state(claim, state.volumes, state.classes, has_consumer=True)
            if s.phase != "Bound":
                return {}, f'pod has unbound immediate PersistentVolumeClaims ("{name}": {s.message or s.phase})'
            if check and "ReadWriteOncePod" in claim.obj.access_modes and self._other_user(worker, name):
                return {}, (f'node has pod using PersistentVolumeClaim "{name}" with the same name and '
                            f"ReadWriteOncePod access mode")
            pv = state.volumes[s.volume]
            on = volume_nodes(pv.raw)
            if c.cluster is not None and on is not None and c.cluster.node not in on:
                return {}, (f'volume "{pv.metadata.name}" is on node {", ".join(sorted(on))}: node(s) had volume '
                            f"node affinity conflict")
            read_only = source.read_only or set(claim.obj.access_modes) == {"ReadOnlyMany"}
            if pv.csi_driver == LOCAL_PROVISIONER:
                problem = self._checked(("volume", pv.volume_handle), self._check_volume) if check else None
                if problem:
                    return {}, problem if problem == CHECKING else \
                        f'MountVolume.SetUp failed for volume "{pv.metadata.name}": {problem}'
                mounts[volume.name] = self.backend.mount(pv.volume_handle, read_only=read_only)
            else:
                assert pv.host_path is not None
                kind = ((pv.raw.get("spec") or {}).get("hostPath") or {}).get("type", "DirectoryOrCreate")
                problem = self._host_path(pv.host_path, kind or "") if check else None
                if problem:
                    return {}, problem if problem == CHECKING else \
                        f'MountVolume.SetUp failed for volume "{pv.metadata.name}": {problem}'
                mounts[volume.name] = MountSource("bind", pv.host_path, read_only)
        return mounts, ""

    def _host_path(self, path: str, type_: str) -> str | None:
        return self._checked((path, type_), self._check_host_path)

    def _checked(self, key: tuple[str, str], check: Callable[[tuple[str, str]], Awaitable[str | None]]
                 ) -> str | None:
        """A check's recent result (None: the volume can be mounted), or CHECKING while it runs (off the loop);
        the controller is kicked when it is done."""
        c = self.controller
        cached = self._host_paths.get(key)
        if cached is not None and c.now() - cached[0] < HOST_PATH_FRESH:
            return cached[1]
        if key not in self._checking:
            self._checking.add(key)
            c._tasks.spawn(self._run_check(key, check), name=f"volume check {key[1]}")
        return CHECKING

    async def _run_check(self, key: tuple[str, str], check: Callable[[tuple[str, str]], Awaitable[str | None]]
                         ) -> None:
        try:
            problem = await check(key)
        except DriverError as error:
            problem = str(error)
        finally:
            self._checking.discard(key)
        self._host_paths[key] = (self.controller.now(), problem)
        self.controller.kick()

    @staticmethod
    async def _check_host_path(key: tuple[str, str]) -> str | None:
        return await asyncio.to_thread(prepare, *key)

    async def _check_volume(self, key: tuple[str, str]) -> str | None:
        """A provisioned volume's storage is still there (a Docker volume removed by hand is not made again
        empty: the pod waits, and the volume shows Failed). In a cluster, a volume of this node is made here
        the first time a pod needs it (never again: the ledger STATE/persistent-volumes.made says it was)."""
        handle = key[1]
        found = next(((name, r.obj) for (kind, _, name), r in self.controller.objects.items() if kind == PV
                      and getattr(r.obj, "volume_handle", "") == handle), None)
        pv = found[0] if found is not None else handle
        if await self.backend.exists(handle):
            self.status.failed.pop(pv, None)
            return None
        if found is not None and self.controller.cluster is not None and self._here(found[1], strict=True) \
                and not await asyncio.to_thread(self._made, pv):
            claim = found[1].claim_ref
            await self.backend.create(pv, {LABEL_CLAIM: f"{claim.namespace}/{claim.name}" if claim else ""})
            await asyncio.to_thread(self._record_made, pv)
            self.status.failed.pop(pv, None)
            log.info("volumes: made the storage of PersistentVolume %s on this node (%s)", pv, handle)
            return None
        message = f"its storage {handle} ({self.backend.kind}) is gone"
        self.status.failed[pv] = message
        return message

    # --- volumes of one node (in a cluster: meshd.controller.volumes.nodelocal) ---------------------------

    def reclaim_here(self) -> None:
        """In a cluster, on every node (the kubelet's pass): this node's provisioned volumes Released with
        reclaimPolicy Delete for RELEASED_GRACE seconds (a claim written just after its volume is not yet seen
        as Released) lose their storage, then their PersistentVolume."""
        c = self.controller
        if c.cluster is None or self._reclaiming:
            return
        state = storage_state(c)
        now = c.now()
        released = {name for name, v in state.volumes.items() if v.csi_driver == LOCAL_PROVISIONER
                    and v.reclaim_policy == "Delete" and self._here(v, strict=True)
                    and volume_phase(v, state.claims) == "Released"}
        self._released = {name: self._released.get(name, now) for name in released}
        due = [name for name, since in self._released.items() if now - since >= RELEASED_GRACE]
        if due:
            self._reclaiming = True
            c._tasks.spawn(self._reclaim_here(due, [state.volumes[name] for name in due]), name="volume reclaim")

    async def _reclaim_here(self, names: list[str], volumes: list[PersistentVolume]) -> None:
        c = self.controller
        try:
            for name, volume in zip(names, volumes, strict=True):
                try:
                    await self.backend.remove(volume.volume_handle)
                    stored = c.store.get(PV, "", name)
                    if stored is not None:
                        await c.store.delete(PV, "", name, resource_version=stored["metadata"]["resourceVersion"])
                    self._released.pop(name, None)
                    log.info("volumes: removed PersistentVolume %s and its storage on this node", name)
                except (DriverError, StoreError, OSError) as error:
                    self._released[name] = c.now()  # tried again after the grace
                    log.warning("volumes: cannot remove PersistentVolume %s on this node: %s", name, error)
        finally:
            self._reclaiming = False

    def _here(self, volume: PersistentVolume, *, strict: bool = False) -> bool:
        """Whether the volume's storage is on this node: one without a node (a single node's; `strict`: no) or
        one whose nodeAffinity names this node."""
        cluster = self.controller.cluster
        nodes = volume_nodes(volume.raw)
        if nodes is None:
            return not strict
        return cluster is not None and cluster.node in nodes

    def _resolved(self, handle: str) -> str:
        path = getattr(self.backend, "path", None)
        return str(path(handle)) if path is not None else handle

    def _ledger(self) -> Any:
        return self.controller.state_dir / "persistent-volumes.made"

    def _made(self, pv: str) -> bool:
        return pv in self._made_here()

    def _made_here(self) -> set[str]:
        """The volumes (names) this node made in a cluster (its ledger)."""
        try:
            return set(self._ledger().read_text().split())
        except FileNotFoundError:
            return set()

    def _record_made(self, pv: str) -> None:
        with self._ledger().open("a") as ledger:
            ledger.write(pv + "\n")
            ledger.flush()
            os.fsync(ledger.fileno())

    def _other_user(self, worker: Any, claim: str) -> bool:
        return any(w is not worker and w.namespace == worker.namespace and w.scheduled and not w.done.is_set()
                   and (worker.namespace, claim) in claims_used(w.namespace, w.spec)
                   for w in self.controller.pods.values())


def _bound_claim(claim: PersistentVolumeClaim, volume: str, class_name: str) -> dict[str, Any]:
    doc = json.loads(json.dumps(claim.raw))
    meta = doc.setdefault("metadata", {})
    meta["namespace"] = claim.metadata.namespace
    annotations = meta.setdefault("annotations", {})
    annotations.update({BIND_COMPLETED: "yes", BOUND_BY_CONTROLLER: "yes"})
    spec = doc.setdefault("spec", {})
    spec["volumeName"] = volume
    if class_name or claim.storage_class_name is not None:
        spec["storageClassName"] = class_name
    return doc


def _claim_ref(claim: ClaimKey, uid: str) -> dict[str, str]:
    return {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": claim[0], "name": claim[1],
            "uid": uid}


def _bound_volume(raw: Any, claim: ClaimKey, uid: str) -> dict[str, Any]:
    doc = json.loads(json.dumps(raw))
    doc.setdefault("spec", {})["claimRef"] = _claim_ref(claim, uid)
    doc.setdefault("metadata", {}).setdefault("annotations", {})[BOUND_BY_CONTROLLER] = "yes"
    return doc


def _provisioned_volume(claim: PersistentVolumeClaim, action: Provision, uid: str, handle: str,
                        backend: str) -> dict[str, Any]:
    volume = _volume_manifest(claim, action, uid, handle, backend)
    if action.node:
        volume["spec"]["nodeAffinity"] = node_affinity(action.node)
    return volume


def _volume_manifest(claim: PersistentVolumeClaim, action: Provision, uid: str, handle: str,
                     backend: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": action.volume, "annotations": {PROVISIONED_BY: LOCAL_PROVISIONER}},
        "spec": {
            "capacity": {"storage": format_memory(claim.storage_bytes)},
            "accessModes": list(claim.access_modes),
            "persistentVolumeReclaimPolicy": action.reclaim_policy,
            "storageClassName": action.class_name,
            "volumeMode": "Filesystem",
            "claimRef": _claim_ref(action.claim, uid),
            "csi": {"driver": LOCAL_PROVISIONER, "volumeHandle": handle,
                    "volumeAttributes": {"meshd.io/backend": backend}},
        },
    }


__all__ = ["CHECKING", "VolumeController"]

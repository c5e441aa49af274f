"""Every agent's view of the cluster's pods (the `v1 Pod` objects of the shared store), and the leader's writes
of them. The controllers count and plan over this view in a cluster (Controller.managed), as they count their
pod workers on one node: a StoredPod reads like a PodWorker (phase, ready, created, terminating...), from the
status its node's kubelet writes (meshd.cluster.kubelet).

The leader creates a pod by binding it to a node with the scheduler (meshd.scheduler) and writing its object; it
deletes one by setting its deletionTimestamp (the node's kubelet stops it, then deletes the object), or at once
when no Ready kubelet could (not bound, node NotReady or gone). A node NotReady for longer than its pods tolerate
(the pod eviction timeout, or their unreachable toleration) loses them (deleted from the store), so the
controllers replace them on Ready nodes."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from meshd.cluster import binding
from meshd.cluster.nodes import NODE_LEASE_NAMESPACE, is_ready, lease_age, nodes_with_readiness, parse_time
from meshd.controller.storewriter import StoreWriter
from meshd.controller.pod import PodIdentity, pod_uid_of
from meshd.manifests import ManifestError, load_objects
from meshd.manifests.render import render_pod_spec
from meshd.manifests.scheduling import SCHEDULING_FIELDS
from meshd.model.objects import Pod, PodSpec
from meshd.controller.volumes.nodelocal import pod_volume_nodes
from meshd.scheduler import NodeInfo, PodInfo, Scheduler
from meshd.scheduler.daemon import should_run
from meshd.store import AlreadyExists, Create, Delete, Event, ObjectStore, object_key

if TYPE_CHECKING:
    from meshd.controller.loop import Controller

log = logging.getLogger(__name__)

TERMINAL = ("Succeeded", "Failed")
CREATE_BATCH = 64  # pods written in one etcd transaction (etcd's --max-txn-ops is 128 by default)


class StoredPod:
    """A Pod object as the controllers see it: the read side of a PodWorker (see PodWorker's properties)."""

    def __init__(self, identity: PodIdentity, spec: PodSpec, labels: Mapping[str, str],
                 annotations: Mapping[str, str], created: float, node: str = "", uid: str = "") -> None:
        self.identity = identity
        self.uid = uid
        self.spec = spec
        self.labels = dict(labels)
        self.annotations = dict(annotations)
        self.created = created
        self.state = binding.PodState(node=node)
        self.deleting = False  # this agent asked for its deletion (the store may not say so yet)
        self.spec_raw: Any = None

    namespace = property(lambda self: self.identity.namespace)
    name = property(lambda self: self.identity.name)
    node = property(lambda self: self.state.node)
    scheduled = property(lambda self: bool(self.state.node))
    phase = property(lambda self: self.state.phase)
    ready = property(lambda self: self.state.ready and not self.terminating)
    ready_since = property(lambda self: self.state.ready_since)
    restarts = property(lambda self: self.state.restarts)
    address = property(lambda self: self.state.address)
    reason = property(lambda self: self.state.reason)
    message = property(lambda self: self.state.message)
    containers = property(lambda self: self.state.containers)

    @property
    def terminating(self) -> bool:
        return self.deleting or self.state.terminating

    def available(self, min_ready_seconds: float, now: float) -> bool:
        return self.ready and self.ready_since is not None and now - self.ready_since >= min_ready_seconds


def read_spec(obj: Mapping[str, Any]) -> PodSpec:
    """The PodSpec of a Pod object (the manifest reader's, so it equals the template's it came from)."""
    meta = obj.get("metadata") or {}
    manifest = {"apiVersion": "v1", "kind": "Pod", "spec": obj.get("spec") or {},
                "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")}}
    (pod,) = load_objects([manifest], source=f"pod {meta.get('namespace')}/{meta.get('name')}").objects
    assert isinstance(pod, Pod)
    return pod.spec


def pod_spec_of(c: Controller, identity: PodIdentity, spec: PodSpec) -> dict[str, Any]:
    """The pod's spec as its object shows it: rendered, with the template's scheduling fields (nodeSelector,
    affinity, tolerations, topologySpreadConstraints) as written."""
    if identity.replicaset:
        rs = c.replicasets.get((identity.namespace, identity.replicaset))
        raw = rs.rs.raw if rs is not None else {}
    else:
        record = c.objects.get((identity.owner_kind, identity.namespace, identity.owner))
        raw = record.obj.raw if record is not None else {}
    template = ((raw.get("spec") or {}).get("template") or {}).get("spec") or {}
    return {**render_pod_spec(spec), **{k: copy.deepcopy(template[k]) for k in SCHEDULING_FIELDS
                                         if k in template and k != "nodeName"}}


def owner_of(c: Controller, identity: PodIdentity) -> dict[str, Any] | None:
    """The ownerReference of a controller's pod (None for a user's bare Pod)."""
    if identity.replicaset:
        rs = c.replicasets.get((identity.namespace, identity.replicaset))
        return binding.owner_reference("ReplicaSet", identity.replicaset, rs.uid if rs else "")
    if identity.owner_kind == "Pod":
        return None
    record = c.objects.get((identity.owner_kind, identity.namespace, identity.owner))
    return binding.owner_reference(identity.owner_kind, identity.owner, record.uid if record else "")


class ClusterPods:
    def __init__(self, controller: Controller, store: ObjectStore, node: str, *, node_grace: float,
                 eviction_timeout: float, clock: Callable[[], float] = time.time) -> None:
        self.c = controller
        self.store = store
        self.node = node
        self.node_grace, self.eviction_timeout = node_grace, eviction_timeout
        self.stored: dict[tuple[str, str], StoredPod] = {}
        self.writer = StoreWriter("pods")
        self._clock = clock
        self._ready_nodes: frozenset[str] = frozenset()
        self._evicted: set[tuple[str, str]] = set()
        self.on_change: Callable[[], None] = lambda: None  # the kubelet's kick
        self._version = 0  # counts the view's changes from the store (the scheduler's snapshot is of one)
        self._snapshot: tuple[int, float, Scheduler] | None = None
        self._creates: dict[tuple[str, str], dict[str, Any]] = {}  # pods created, not written yet, in order

    # --- the view --------------------------------------------------------------------------------

    def load(self) -> None:
        """The view read again from the store (at start; after a watch fell too far behind), keeping the pods
        created and not written yet."""
        self._version += 1
        self.stored = {k: p for k, p in self.stored.items() if k in self._creates}
        for obj in self.store.list("Pod"):
            self._observe(obj)

    def observe(self, event: Event) -> None:
        """One store event of a Pod into the view."""
        _, namespace, name = object_key(event.object)
        self._version += 1
        if event.type == "DELETED":
            self.stored.pop((namespace, name), None)
            self._evicted.discard((namespace, name))
        else:
            self._observe(event.object)
        self.c.kick()
        self.on_change()

    def _observe(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        uid = str(meta.get("uid") or "")
        pod = self.stored.get(key)
        if pod is not None and pod.uid != uid:
            pod = None  # a new pod of the same name (a StatefulSet's)
        if pod is None or pod.spec_raw != obj.get("spec"):
            try:
                spec = read_spec(obj)
            except (ManifestError, ValueError, KeyError, TypeError) as error:
                log.error("pod %s/%s: its spec does not load (%s); left out", *key, error)
                return
            created = parse_time(meta.get("creationTimestamp")) or self._clock()
            fresh = StoredPod(pod.identity if pod is not None else binding.identity_of(obj), spec,
                              meta.get("labels") or {}, meta.get("annotations") or {},
                              pod.created if pod is not None else created, uid=uid)
            fresh.deleting = pod.deleting if pod is not None else False
            fresh.spec_raw = obj.get("spec")
            pod = fresh
        if binding.controller_ref(obj) is None and pod.identity.owner_kind != "Pod":  # orphaned: a bare Pod now
            pod.identity = binding.identity_of(obj)
        pod.state = binding.pod_state(obj)
        self.stored[key] = pod

    def get(self, namespace: str, name: str) -> StoredPod | None:
        return self.stored.get((namespace, name))

    # --- the leader's writes ----------------------------------------------------------------------

    def nodes(self) -> list[NodeInfo]:
        return [NodeInfo.from_node(n, ready=is_ready(n))
                for n in nodes_with_readiness(self.store, grace=self.node_grace, now=self._clock())]

    def ready_nodes(self) -> list[str]:
        return sorted(n.name for n in self.nodes() if n.ready and not n.unschedulable)

    def daemon_nodes(self, spec: PodSpec) -> list[str]:
        """The Ready nodes that should run a DaemonSet's pod of this template (nodeName, node affinity and
        nodeSelector, taints: meshd.scheduler.daemon)."""
        return sorted(n.name for n in self.nodes() if n.ready and should_run(spec, n)[0])

    def _placed(self) -> list[PodInfo]:
        return [PodInfo(p.namespace, p.name, p.labels, p.spec, p.node) for p in self.stored.values()
                if p.node and p.phase not in TERMINAL]

    def place(self, namespace: str, name: str, labels: Mapping[str, str], spec: PodSpec) -> tuple[str, str]:
        """(node, "") for the node the scheduler picks, or ("", why none fits). The nodes and the pods placed are
        read once for a pass that places many (until the view changes, or half a second)."""
        now = self._clock()
        snapshot = self._snapshot
        if snapshot is None or snapshot[0] != self._version or not 0 <= now - snapshot[1] < 0.5:
            snapshot = self._snapshot = (self._version, now, Scheduler(self.nodes(), self._placed()))
        placement = snapshot[2].bind(PodInfo(namespace, name, labels, spec,  # counted for the next one
                                             volume_nodes=self._volume_nodes(namespace, spec)))
        return placement.node or "", placement.message

    def _volume_nodes(self, namespace: str, spec: PodSpec) -> frozenset[str] | None:
        if not any(v.persistent_volume_claim is not None for v in spec.volumes):
            return None
        objects = self.c.objects

        def claim_of(key: tuple[str, str]) -> Any:
            record = objects.get(("PersistentVolumeClaim", *key))
            return record.obj if record is not None else None

        def volume_of(name: str) -> Any:
            record = objects.get(("PersistentVolume", "", name))
            return record.obj if record is not None else None

        return pod_volume_nodes(namespace, spec, claim_of, volume_of)

    def create(self, identity: PodIdentity, spec: PodSpec, labels: dict[str, str], annotations: dict[str, str],
               *, created: float, node: str = "") -> StoredPod:
        """A new pod: bound (to `node` if given, as a DaemonSet's), written to the store, counted at once."""
        message = ""
        if not node:
            node, message = self.place(identity.namespace, identity.name, labels, spec)
        pod = StoredPod(identity, spec, labels, annotations, created, node,
                        uid=pod_uid_of(identity.namespace, identity.name, created))
        key = (identity.namespace, identity.name)
        self.stored[key] = pod
        manifest = binding.pod_manifest(identity, self._spec_of(identity, spec), labels=labels, annotations=annotations,
                                        created=created, uid=pod.uid, owner=self._owner(identity),
                                        node=node, unschedulable=message)
        if not node:
            pod.state = binding.pod_state(manifest)
            self.c.events.record("Pod", *key, "Warning", "FailedScheduling", message)
        else:
            self.c.events.record("Pod", *key, "Normal", "Scheduled",
                                 f"Successfully assigned {identity.namespace}/{identity.name} to {node}")
        self._creates[key] = manifest
        self.writer.submit("creates", self._write_creates)
        return pod

    async def _write_creates(self) -> None:
        """The pods created since the last write, CREATE_BATCH to a transaction (one by one when one of a batch
        exists already). A leader that lost its lease writes no more pods: the new one decides."""
        while self._creates:
            batch = list(self._creates.items())[:CREATE_BATCH]
            if not self.c.leading:
                for key, _ in batch:
                    del self._creates[key]
                    if self.store.get("Pod", *key) is None:
                        self.stored.pop(key, None)
                continue
            try:
                await self.store.transaction([Create(m) for _, m in batch])
            except AlreadyExists:
                for key, manifest in batch:
                    if self._creates.get(key) is manifest:
                        with contextlib.suppress(AlreadyExists):
                            await self.store.create(manifest)
            for key, manifest in batch:
                if self._creates.get(key) is manifest:
                    del self._creates[key]

    def _spec_of(self, identity: PodIdentity, spec: PodSpec) -> dict[str, Any]:
        return pod_spec_of(self.c, identity, spec)

    def _owner(self, identity: PodIdentity) -> dict[str, Any] | None:
        return owner_of(self.c, identity)

    def delete(self, pod: StoredPod, why: str) -> None:
        """Deletes a pod gracefully: its node's kubelet stops it, then removes the object."""
        if pod.terminating:
            return
        pod.deleting = True
        key = (pod.namespace, pod.name)
        self.c.events.record("Pod", *key, "Normal", "Killing", f"Stopping pod: {why}")
        if self._creates.pop(key, None) is not None:  # not written yet: never will be
            self.stored.pop(key, None)
            return
        self.writer.submit((key, "delete"), lambda: self._mark_deleted(key))

    async def deletion_written(self, key: tuple[str, str], *, wait: float = 5.0) -> None:
        """Returns once a pod's deletion queued by `delete` is in the store (at most `wait` s: an unreachable
        store keeps it queued), so the API answers a delete or an eviction after its write, as the API server."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self.writer.settled((key, "delete"))

    async def _mark_deleted(self, key: tuple[str, str]) -> None:
        obj = self.store.get("Pod", *key)
        if obj is None:
            self._creates.pop(key, None)  # not written yet: never will be
            return
        node = binding.node_of(obj)
        if not node or node not in self.ready_nodes():  # no kubelet will confirm: gone at once
            await self.store.delete("Pod", *key, resource_version=obj["metadata"]["resourceVersion"])
            return
        if binding.deleting(obj):
            return
        meta = {**obj["metadata"], "deletionTimestamp": binding.rfc3339(self._clock()),
                "deletionGracePeriodSeconds": int(self.stored[key].spec.termination_grace_period_seconds or 30)
                if key in self.stored else 30}
        await self.store.update({**obj, "metadata": meta})

    def ensure_bare(self, namespace: str, name: str) -> None:
        """A user's Pod (a desired object): bound to a node once, by the scheduler unless it names one."""
        pod = self.stored.get((namespace, name))
        if pod is None or pod.node or pod.terminating or self.writer.pending(((namespace, name), "bind")):
            return
        self._bind(pod)

    def _bind(self, pod: StoredPod) -> None:
        key = (pod.namespace, pod.name)
        node, message = self.place(pod.namespace, pod.name, pod.labels, pod.spec)
        if node:
            pod.state = binding.PodState(node=node)
            self.c.events.record("Pod", *key, "Normal", "Scheduled",
                                 f"Successfully assigned {pod.namespace}/{pod.name} to {node}")
        elif message != pod.message:
            self.c.events.record("Pod", *key, "Warning", "FailedScheduling", message)
        else:
            return  # unschedulable as before: written already

        async def write() -> None:
            obj = self.store.get("Pod", *key)
            if obj is None or binding.node_of(obj) or binding.deleting(obj):
                return
            await self.store.update(binding.bound(obj, node) if node else binding.unschedulable(obj, message))
        self.writer.submit((key, "bind"), write)

    def tick(self) -> None:
        """The leader, every second: pods of nodes NotReady too long are evicted; pods that fit nowhere are
        placed again when the Ready nodes change."""
        ready = frozenset(self.ready_nodes())
        if ready != self._ready_nodes:
            self._ready_nodes = ready
            self._snapshot = None
            for pod in list(self.stored.values()):
                if not pod.node and not pod.terminating:
                    self._bind(pod)
        self._evict()

    def _evict(self) -> None:
        now = self._clock()
        ages = {n["metadata"]["name"]: lease_age(self.store.get("Lease", NODE_LEASE_NAMESPACE, n["metadata"]["name"]),
                                                 now) for n in self.store.list("Node")}
        pods = {k: (p.node, p.identity.owner_kind,
                    binding.tolerated_for(p.spec.scheduling.tolerations, self.eviction_timeout))
                for k, p in self.stored.items() if k not in self._evicted and p.node}
        for key in binding.evictions(pods, ages, grace=self.node_grace):
            pod = self.stored[key]
            self._evicted.add(key)
            self.c.events.record("Pod", *key, "Warning", "NodeNotReady",
                                 f"Node {pod.node} is not ready: evicting its pods")
            self.c.events.record("Pod", *key, "Normal", "TaintManagerEviction",
                                 f"Marking for deletion Pod {key[0]}/{key[1]}: node {pod.node} NotReady for longer "
                                 "than the pod tolerates")
            pod.deleting = True
            self.writer.submit((key, "delete"), functools.partial(self._remove, key))

    async def _remove(self, key: tuple[str, str]) -> None:
        obj = self.store.get("Pod", *key)
        if obj is not None:
            await self.store.transaction([Delete("Pod", *key, obj["metadata"]["resourceVersion"])])

    async def run_leader(self, leading: Callable[[], bool]) -> None:
        while True:
            await asyncio.sleep(1.0)
            if leading():
                self.tick()
            else:
                self._ready_nodes = frozenset()


__all__ = ["ClusterPods", "StoredPod", "owner_of", "pod_spec_of", "read_spec"]

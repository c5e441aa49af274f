"""The controller: holds the desired objects, turns them into ReplicaSets and pods with the pure plans of
`plan.py`, and runs one PodWorker per pod. It follows the driver's event stream (a dead container is seen
at once), adopts what runs after a restart, and removes labelled containers that no object wants.

Reconciliation is serial (one pass at a time, never two for one object); everything slow happens in the
pod workers, so a pass is pure bookkeeping and cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import dataclasses
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from meshd.controller.admission import schedule_pending, volumes_ready
from meshd.controller.adoption import adopt, collect_garbage_forever, follow_events, remove_containers
from meshd.controller.applychecks import (
    in_namespace,
)
from meshd.controller.applyplan import plan_apply
from meshd.controller.backoff import BackoffPolicy
from meshd.controller.batch import BatchControllers
from meshd.controller.clusterip import IP_ADDRESS_KIND, address_releases, is_address_race
from meshd.controller.cronclock import MINUTE, cron_clock
from meshd.controller.events import EventLog
from meshd.controller.namespaces import BUILTIN, missing_namespaces, namespace_object
from meshd.controller.persist import (
    desired_object,
    migrate_state_json,
)
from meshd.controller.plan import (
    ReplicaSetView,
)
from meshd.controller.pod import PodIdentity, PodWorker, Prober
from meshd.controller.progress import Progress, ProgressWriter, with_stored_status
from meshd.controller.podadoption import adopt_orphans
from meshd.controller.replicasets import ensure_bare_replicaset, reconcile_replicaset
from meshd.controller.metrics import RECONCILE_DURATION, RECONCILES
from meshd.controller.rollouts import reconcile_deployment, undo_target
from meshd.controller.rsstore import load as load_from_store
from meshd.controller.rsstore import persist_replicasets
from meshd.controller.services import (
    ingress_warnings,
    publish_service,
    service_of,
    unpublish_service,
)
from meshd.controller.podevents import PodEventRecorder
from meshd.controller.sets import WorkloadSets
from meshd.controller.views import deployment_status, replicaset_view
from meshd.controller.workers import ensure_bare_pod, new_worker, pod_wanted, terminate
from meshd.controller import terminating
from meshd.controller.records import (
    REVISION_ANNOTATION,
    DeploymentStatus,
    ObjectRecord,
    ReplicaSetRecord,
    template_without_hash,
)
from meshd.driver.base import (
    Driver,
    ObservedContainer,
)
from meshd.external.listeners import DEFAULT_EXTERNAL
from meshd.manifests import load_documents, load_objects
from meshd.model.cron import known_zones
from meshd.model.security import SecuritySupport
from meshd.model.endpoints import ServiceKey
from meshd.model.objects import (
    ConfigMap,
    Deployment,
    KubeObject,
    Pod,
    PodSpec,
    ReplicaSet,
    Secret,
    Service,
    StatefulSet,
    object_key,
)
from meshd.registry import Registry
from meshd.registry.addresses import AddressAllocator
from meshd.store import (
    AlreadyExists,
    Conflict,
    Create,
    Delete,
    ObjectStore,
    Operation,
    StoreError,
    Update,
    open_sqlite_store,
)
from meshd.tasks import TaskGroup
from meshd.volumes.podconfig import PodConfig
from meshd.controller.volumes.defaults import default_class_manifest
from meshd.controller.volumes.provisioner import VolumeController

DEFAULT_BACKOFF = BackoffPolicy()

log = logging.getLogger(__name__)



@dataclasses.dataclass
class ApplyResult:
    kind: str
    namespace: str
    name: str
    action: str  # created | configured | unchanged | deleted | not found


@dataclasses.dataclass(frozen=True)
class NodeCapacity:
    cpu_millicores: int
    memory_bytes: int
    pods: int = 110  # the kubelet's --max-pods: pods that run at once; as many more may wait Pending

    @property
    def pod_objects(self) -> int:
        """The most pod objects (running and Pending) the node keeps, so memory stays bounded."""
        return 2 * self.pods


class Controller:
    def __init__(
        self,
        *,
        driver: Driver,
        registry: Registry,
        state_dir: Path,
        agent_id: str,
        service_pool: str,
        capacity: NodeCapacity,
        backoff: BackoffPolicy = DEFAULT_BACKOFF,
        zone: str = "cluster.local",
        make_prober: Prober | None = None,
        drain: Callable[[PodWorker, float], Any] | None = None,
        on_service_address: Callable[[str, bool], Any] | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        store: ObjectStore | None = None,
        external: tuple[str, ...] = DEFAULT_EXTERNAL,
        security: SecuritySupport | None = None,
        cron_minute: float = MINUTE,
    ) -> None:
        """Without a store, start() opens STATE/store.db (and moves an old state.json into it). `security`:
        what the driver enforces of a securityContext, and whether privileged pods are allowed (not by default).
        `cron_minute`: how many seconds a CronJob schedule's minute lasts (60; less only in tests: cronclock.py)."""
        self.driver = driver
        self.security = security or SecuritySupport(driver=getattr(driver, "name", "docker"),
                                                    agent_uid=os.geteuid(), agent_gid=os.getegid())
        self.registry = registry
        self.state_dir = state_dir
        self.agent_id = agent_id
        self.capacity = capacity
        self.backoff = backoff
        self.zone = zone
        self.events = EventLog(clock=clock)
        self.pod_events = PodEventRecorder(self.events)  # the kubelet's Events: Started, Failed, BackOff...
        self.objects: dict[tuple[str, str, str], ObjectRecord] = {}
        self.replicasets: dict[tuple[str, str], ReplicaSetRecord] = {}
        self.pods: dict[tuple[str, str], PodWorker] = {}
        self.progress: dict[tuple[str, str], Progress] = {}  # rollouts followed; kept in the store (progress.py)
        self.progress_writer = ProgressWriter(lambda: self.store)
        self.addresses = AddressAllocator(service_pool)
        self.external = external  # the --external addresses: LoadBalancer, NodePort and hostPort listen there
        self._host_port_keys: set[ServiceKey] = set()  # the pods' hostPort records in the registry
        self._make_prober = make_prober
        self._drain = drain or _no_drain
        self._on_service_address = on_service_address
        self._clock = clock
        self._rng = rng or random.Random()
        self._kick_event = asyncio.Event()
        self._tasks = TaskGroup("controller")
        self._watchers: list[Callable[[str, str, str], None]] = []
        self._timers: list[asyncio.TimerHandle] = []
        self._dirty = False
        self._batches: dict[tuple[str, str], int] = {}  # ReplicaSet -> its slow-start batch
        self._short: set[tuple[str, str]] = set()  # ReplicaSets told they cannot create more pods
        self.store = store if store is not None else ObjectStore()  # memory only until start() opens the state dir's
        self._open_store = store is None
        self._write_lock = asyncio.Lock()  # one user write at a time: planned, persisted, then applied
        self._persisted_rs: dict[tuple[str, str], tuple] = {}  # what the store holds of each owned ReplicaSet
        self.pod_config = PodConfig(state_dir / "pod-volumes", lookup=self._config_object)
        self.sets = WorkloadSets(self)  # StatefulSets and DaemonSets (meshd.controller.sets)
        self.volume_controller = VolumeController(self)  # claims, volumes and the pods' storage gate
        self.volume_status = self.volume_controller.status
        self.cron_clock = cron_clock(cron_minute, now=clock())  # what CronJob schedules are read on
        self.batch = BatchControllers(self)  # Jobs, CronJobs, namespace deletion
        self.leading = True  # with a shared store, only the leader reconciles (meshd.cluster.leader)
        self.cluster: Any = None  # in a cluster: meshd.cluster.pods.ClusterPods, the pods of every node
        self.kubelet: Any = None  # in a cluster: meshd.cluster.kubelet.Kubelet, which runs this node's
        self.pod_objects: Any = None  # on one node: meshd.cluster.podobjects.PodObjects, its pods in the store
        # objects a DELETE marked (deletionTimestamp, finalizers): served, not reconciled (meshd.controller.terminating)
        self.terminating: dict[tuple[str, str, str], ObjectRecord] = {}
        # run on the opened store before its objects load: the agent's re-addressing (meshd.slotreaddress)
        self.before_load: Callable[[Any], Awaitable[object]] | None = None

    @property
    def managed(self) -> dict[tuple[str, str], PodWorker]:
        """The pods the controllers count and plan over: this node's workers, or in a cluster every node's Pod
        objects (StoredPods, which read like PodWorkers)."""
        return self.pods if self.cluster is None else self.cluster.stored

    def use_store(self, store: ObjectStore) -> None:
        """Runs on this store (a shared one: meshd.store.etcd) instead of opening STATE/store.db in start()."""
        self.store, self._open_store = store, False

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._open_store:
            self.store = await open_sqlite_store(self.state_dir)
            self._open_store = False
            await migrate_state_json(self.state_dir, self.store)
        self.events.attach(self.store, self._notify)  # Events are store objects from now on
        self.events.pruning = lambda: self.leading
        await asyncio.to_thread(known_zones)  # what CronJobs' timeZone is checked against, read once off the loop
        if self.before_load is not None:
            await self.before_load(self.store)
        load_from_store(self)
        terminating.load(self)  # what the store holds Terminating stays so
        if not any(k[0] == "StorageClass" for k in self.objects) and self.store.get("StorageClass", "", "local") is None:
            try:
                await self.apply(json.dumps(default_class_manifest()), source="the default StorageClass")
            except (AlreadyExists, Conflict):  # another agent on a shared store made it first
                pass
        for record in [*self.objects.values(), *self.terminating.values()]:  # a Terminating Service still routes
            if isinstance(record.obj, Service):
                publish_service(self, record.obj)
        await self.volume_controller.start()
        observed = await self.driver.list_managed()
        if self.kubelet is not None:  # a cluster's node: from the Pod objects bound to it
            self.kubelet.adopt(observed)
        elif self.pod_objects is not None:  # one node whose pods are objects of its store: from them
            self.pod_objects.adopt(observed)
        else:
            adopt(self, observed)
        self._tasks.supervise("events", functools.partial(follow_events, self))
        self._tasks.supervise("event writes", self.events.run)
        self._tasks.supervise("deployment status writes", self.progress_writer.writer.run)
        if self.pod_objects is not None:
            self._tasks.supervise("pod objects", self.pod_objects.run)
        self._tasks.supervise("reconcile", self._reconcile_forever)
        self._tasks.supervise("gc", functools.partial(collect_garbage_forever, self))
        self._tasks.supervise("finalizers", functools.partial(terminating.run, self))
        self._tasks.supervise("config volumes", lambda: self.pod_config.sync_forever(
            lambda: [(w.facts(), w.spec) for w in list(self.pods.values()) if not w.terminating]))
        self.kick()

    async def close(self, *, stop_pods: bool) -> None:
        """Stops the controller; with stop_pods every pod is drained and removed, else they keep running."""
        await self._tasks.close()
        for timer in self._timers:
            timer.cancel()
        workers = list(self.pods.values())
        if stop_pods:
            for worker in workers:
                worker.terminate()
            await asyncio.gather(*(w.wait_done() for w in workers))
            if self.pod_objects is not None:  # the controllers' pods are gone, so are their objects: the next
                self.pods.clear()  # start makes pods anew (as after a node's drain), not the stopped ones again
                with contextlib.suppress(StoreError):
                    await self.pod_objects.flush()
        else:
            await asyncio.gather(*(w.detach() for w in workers))
        await self.events.flush()
        await self.progress_writer.writer.drain()
        await self.store.close()

    def kick(self) -> None:
        self._kick_event.set()

    def watch(self, watcher: Callable[[str, str, str], None]) -> Callable[[], None]:
        """Calls watcher(kind, namespace, name) whenever an object's status may have changed."""
        self._watchers.append(watcher)
        return lambda: self._watchers.remove(watcher) if watcher in self._watchers else None

    def _notify(self, kind: str, namespace: str, name: str) -> None:
        for watcher in list(self._watchers):
            watcher(kind, namespace, name)

    # --- desired state ----------------------------------------------------------------------------

    async def apply(self, text: str, *, source: str = "<stdin>", namespace: str | None = None,
                    carry_live: bool = True, check: Callable[[], str | None] | None = None,
                    create_namespaces: bool = True) -> tuple[list[ApplyResult], list[str]]:
        """Validates every document first; a broken one raises ManifestError and changes nothing. Every change
        is persisted in one transaction before it takes effect; one that cannot be (PersistError) changes
        nothing either.

        `namespace` (kubectl's -n) is the namespace of objects that name none; one naming another is an error.
        `carry_live=False` writes the documents as they are (the API's PUT and PATCH send whole objects: nothing of
        the live one is carried over); `check` runs under the write lock before anything is planned, to refuse
        the write (a stale resourceVersion, an object that already exists) by raising; the resourceVersion it
        answers is a precondition of the store's write of the (one) object (Conflict if it moved on since).
        An object in a namespace that does not exist is refused (KeyError, as the API server's NotFound), unless
        `create_namespaces` (meshd apply, meshd up) creates it with a warning.
        """
        loaded = await asyncio.to_thread(load_documents, text, source=source)  # big files parse off the loop
        warnings = list(loaded.warnings)
        async with self._write_lock:
            expected = check() if check is not None else None
            objects = [in_namespace(o, namespace, source) for o in loaded.objects]
            missing = missing_namespaces(objects, exists=self.namespace_exists,
                                         terminating=self.batch.namespaces.terminating)
            if missing and not create_namespaces:
                raise KeyError(f'namespaces "{missing[0]}" not found')
            warnings += [f'namespace "{ns}" did not exist: created' for ns in missing]
            objects = [namespace_object(ns) for ns in missing] + objects
            for attempt in range(3):  # another agent took an address this write chose: choose again
                try:
                    results = await self._apply(objects, source, None, carry_live, expected=expected)
                    break
                except AlreadyExists as error:
                    if attempt == 2 or not is_address_race(error):
                        raise
            return results, warnings + ingress_warnings(objects, service_of(self.objects))

    def namespace_exists(self, name: str) -> bool:
        return name in BUILTIN or ("Namespace", "", name) in self.objects

    async def _apply(self, objects: Iterable[KubeObject], source: str, namespace: str | None,
                     carry_live: bool = True, *, expected: str | None = None) -> list[ApplyResult]:
        planned, addresses = plan_apply(self, objects, source, namespace, carry_live)
        operations: list[Operation] = []
        in_batch: set[tuple[str, str, str]] = set()
        for obj, action in planned:
            key = object_key(obj)
            if action == "unchanged":
                continue
            stored = with_stored_status(desired_object(obj), self.store.get(*key))  # status: the controller's
            # an object the store holds but that did not load (see load_records) is replaced
            exists = key in in_batch or key in self.objects or self.store.get(*key) is not None
            if exists and expected is not None:  # the version the API checked: refused if it moved on since
                stored["metadata"]["resourceVersion"] = expected
            operations.append(Update(stored) if exists else Create(stored))
            in_batch.add(key)
        operations += addresses.operations() if addresses is not None else []
        written = {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o
                   for o in await self.store.transaction(operations)}
        results = []
        for obj, action in planned:
            key = object_key(obj)
            if action != "unchanged":
                meta = written[key]["metadata"]
                created = self.objects[key].created if key in self.objects else self._clock()
                self.objects[key] = ObjectRecord(obj, int(meta["generation"]), created, str(meta["uid"]))
                self.events.record(obj.kind, obj.metadata.namespace, obj.metadata.name, "Normal", "Applied", action)
                self._notify(obj.kind, obj.metadata.namespace, obj.metadata.name)
                if isinstance(obj, Service):
                    publish_service(self, obj)
                if isinstance(obj, Deployment):
                    self.progress.pop(key[1:], None)
                if isinstance(obj, (ConfigMap, Secret)):
                    self.pod_config.changed()
                    self._notify(*key)  # watches: nothing else changes with it
            results.append(ApplyResult(obj.kind, obj.metadata.namespace, obj.metadata.name, action))
        self.kick()
        return results

    async def delete_text(self, text: str, *, source: str = "<stdin>", namespace: str | None = None
                          ) -> list[ApplyResult]:
        """Deletes every object of the manifests that exists (as kubectl does, one missing object does not stop
        the rest), in one transaction; the missing ones come back as "not found"."""
        loaded = await asyncio.to_thread(load_documents, text, source=source)
        objects = [in_namespace(o, namespace, source) for o in loaded.objects]
        return await self.delete_many([object_key(o) for o in objects])

    async def delete(self, kind: str, namespace: str, name: str) -> ApplyResult:
        (result,) = await self.delete_many([(kind, namespace, name)])
        if result.action == "not found":
            raise KeyError(f'{kind.lower()}s "{name}" not found')
        return result

    async def delete_many(self, keys: list[tuple[str, str, str]], *, protect: bool = True) -> list[ApplyResult]:
        """Deletes the objects that exist in one transaction (persisted first: if it cannot be, nothing goes).
        With `protect`, a claim a pod uses stays (Terminating) until the pod is gone, as Kubernetes' finalizer."""
        async with self._write_lock:
            extra, held = self.batch.on_delete(keys, self._clock())  # a CronJob takes its Jobs; a namespace waits
            found = list(dict.fromkeys(k for k in [*keys, *extra] if k in self.objects and k not in held))
            kept = await self.volume_controller.protect(found) if protect else set()
            if kept:
                self.kick()
                self._notify(*next(iter(kept)))
            found = [k for k in found if k not in kept]
            marks = terminating.held_back(self, found)  # a finalizer holds these: Terminating, not gone
            found = [k for k in found if k not in marks]
            await self.store.transaction([*marks.values()] + [
                Delete(*k) for k in found if self.store.get(*k) is not None] + address_releases(
                self.store.list(IP_ADDRESS_KIND), [ServiceKey(k[1], k[2]) for k in found if k[0] == "Service"]))
            for key in marks:
                terminating.hold(self, key)
                kept.add(key)
            for key in found:
                self._forget(key)
                if key[0] in ("ConfigMap", "Secret"):
                    self._notify(*key)
            if found:
                self.kick()
            gone = set(found) | kept | {k for k in held if k in self.objects}
            if held:
                self.kick()
            return [ApplyResult(*k, "deleted" if k in gone else "not found") for k in keys]

    def _forget(self, key: tuple[str, str, str], *, unpublish: bool = True) -> None:
        """The object is no longer reconciled; a Service also stops being served unless `unpublish` is False (a
        Terminating one is still routed and resolved: meshd.controller.terminating)."""
        kind, namespace, name = key
        record = self.objects.pop(key, None)
        if record is None:  # a shared store's watch forgot it first (meshd.cluster.follow)
            return
        self._notify(kind, namespace, name)
        if isinstance(record.obj, Service) and unpublish:
            unpublish_service(self, namespace, name)
        if isinstance(record.obj, (Deployment, ReplicaSet)):  # its pods go too (a bare ReplicaSet owns itself)
            for rs_key in [k for k, r in self.replicasets.items() if r.owner_kind == kind
                           and r.namespace == namespace and r.owner == name]:
                self.replicasets[rs_key].replicas = 0
                self._dirty = True

    async def scale(self, kind: str, namespace: str, name: str, replicas: int, *,
                    managed_fields: list[dict[str, Any]] | None = None) -> None:
        async with self._write_lock:
            record = self.objects.get((kind, namespace, name))
            if record is None or not isinstance(record.obj, (Deployment, ReplicaSet, StatefulSet)):
                raise KeyError(f'{kind.lower()}s "{name}" not found')
            if not 0 <= replicas <= 2**31 - 1:
                raise ValueError(f"spec.replicas: Invalid value: {replicas}: must be within 0..2147483647 (an int32)")
            raw = json.loads(json.dumps(record.obj.raw))
            raw.setdefault("spec", {})["replicas"] = replicas
            if managed_fields is not None:  # the API's field managers (meshd.api.fieldsets)
                raw.setdefault("metadata", {})["managedFields"] = managed_fields
            obj = dataclasses.replace(record.obj, replicas=replicas, raw=raw)
            await self._write(record, obj)
            self.events.record(kind, namespace, name, "Normal", "ScalingReplicaSet", f"Scaled to {replicas}")
            self.kick()

    async def _write(self, record: ObjectRecord, obj: KubeObject) -> None:
        """Persists a changed desired object, then makes it current (with the store's generation)."""
        stored = await self.store.update(with_stored_status(desired_object(obj), self.store.get(*object_key(obj))))
        record.obj = obj
        record.generation = int(stored["metadata"]["generation"])

    async def rollout_restart(self, namespace: str, name: str) -> None:
        def mutate(raw: dict[str, Any]) -> None:
            annotations = raw["spec"]["template"].setdefault("metadata", {}).setdefault("annotations", {})
            annotations["kubectl.kubernetes.io/restartedAt"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

        await self._mutate_deployment(namespace, name, mutate)

    async def rollout_undo(self, namespace: str, name: str, to_revision: int | None = None) -> int:
        target = undo_target(self._owned_replicasets(namespace, name), to_revision, name)
        template = template_without_hash(target.rs)
        await self._mutate_deployment(namespace, name, lambda raw: raw["spec"].__setitem__("template", template))
        return target.revision

    def history(self, namespace: str, name: str) -> list[ReplicaSetRecord]:
        return sorted(self._owned_replicasets(namespace, name), key=lambda r: r.revision)

    async def _mutate_deployment(self, namespace: str, name: str,
                                 mutate: Callable[[dict[str, Any]], None]) -> None:
        async with self._write_lock:
            record = self.objects.get(("Deployment", namespace, name))
            if record is None:
                raise KeyError(f'deployments "{name}" not found')
            raw = json.loads(json.dumps(record.obj.raw))
            mutate(raw)
            (obj,) = load_objects([raw], source=f"deployment/{name}").objects
            await self._write(record, obj)
            self.progress.pop((namespace, name), None)
            self.kick()

    def _config_object(self, kind: str, namespace: str, name: str) -> ConfigMap | Secret | None:
        record = self.objects.get((kind, namespace, name))
        return record.obj if record is not None and isinstance(record.obj, (ConfigMap, Secret)) else None

    # --- reconciliation ---------------------------------------------------------------------------

    async def _reconcile_forever(self) -> None:
        while True:
            await self._kick_event.wait()
            self._kick_event.clear()
            if not self.leading:
                continue
            await adopt_orphans(self)  # a ReplicaSet claims the bare pods its selector matches
            with RECONCILE_DURATION.time():
                self.reconcile()
            RECONCILES.inc()
            if self._dirty:
                await persist_replicasets(self)
            await self.batch.flush()
            await asyncio.sleep(0)

    def reconcile(self) -> None:
        """One pass; the ReplicaSets it changes are persisted after it (meshd.controller.rsstore)."""
        now = self._clock()
        for record in list(self.objects.values()):
            if isinstance(record.obj, Deployment):
                reconcile_deployment(self, record, now)
            elif isinstance(record.obj, ReplicaSet):
                ensure_bare_replicaset(self, record, now)
        for rs_key, rs in list(self.replicasets.items()):
            if not self._owner_exists(rs) and rs.replicas:  # an orphan (its owner was deleted): its pods go
                rs.replicas = 0
                self._dirty = True
            reconcile_replicaset(self, rs, now)
            if not self._owner_exists(rs) and not self._pods_of(rs) and \
                    not terminating.stopping_in_the_foreground(self, rs):
                del self.replicasets[rs_key]
                self._dirty = True
        self.sets.reconcile(now)
        for record in self.objects.values():
            if isinstance(record.obj, Pod):
                ensure_bare_pod(self, record.obj, record.created)
        self.batch.reconcile(now)
        for worker in list(self.managed.values()):
            if not worker.terminating and not self._pod_wanted(worker):
                self._terminate(worker, "owner deleted")
        self._schedule_pending()
        self._batches = {k: v for k, v in self._batches.items() if k in self.replicasets}
        self.volume_controller.reconcile()

    def _new_worker(self, identity: PodIdentity, spec: PodSpec, labels: dict[str, str],
                    annotations: dict[str, str], *, created: float,
                    adopt: list[ObservedContainer] | None = None, bind: bool = True, node: str = "") -> PodWorker:
        """A new pod's worker; in a cluster (`bind`) the pod is bound to a node (`node`, or the scheduler's) and
        written to the store instead, and the kubelet of its node makes the worker (bind=False)."""
        if self.cluster is not None and bind:
            return self.cluster.create(identity, spec, labels, annotations, created=created, node=node)
        return new_worker(self, identity, spec, labels, annotations, created=created, adopt=adopt)

    def _schedule_pending(self) -> None:
        schedule_pending(self)


    def _volumes_ready(self, worker: PodWorker) -> bool:
        return volumes_ready(self, worker)

    def now(self) -> float:
        return self._clock()

    def delete_pod(self, namespace: str, name: str) -> None:
        """Stops one pod; its ReplicaSet (if any) replaces it, as in Kubernetes."""
        worker = self.managed.get((namespace, name))
        if worker is None:
            raise KeyError(f'pods "{name}" not found')
        self._terminate(worker, "deleted")
        self.kick()

    async def pod_deletion_written(self, namespace: str, name: str) -> None:
        """After `delete_pod`: in a cluster, waits until the deletion is in the store (read-your-writes)."""
        if self.cluster is not None:
            await self.cluster.deletion_written((namespace, name))

    def _terminate(self, worker: PodWorker, why: str) -> None:
        if self.cluster is not None and not isinstance(worker, PodWorker):
            return self.cluster.delete(worker, why)  # a Pod object: deleted through its node's kubelet
        terminate(self, worker, why)

    def _pod_changed(self, worker: PodWorker) -> None:
        self.pod_events.observe(worker)
        self._notify("Pod", worker.namespace, worker.name)
        self.kick()

    # --- views ------------------------------------------------------------------------------------

    def _owned_replicasets(self, namespace: str, name: str) -> list[ReplicaSetRecord]:
        return [r for r in self.replicasets.values()
                if r.owner_kind == "Deployment" and r.namespace == namespace and r.owner == name]

    def _owner_exists(self, rs: ReplicaSetRecord) -> bool:
        return (rs.owner_kind, rs.namespace, rs.owner) in self.objects

    def _pods_of(self, rs: ReplicaSetRecord) -> list[PodWorker]:
        return [w for w in self.managed.values()
                if w.namespace == rs.namespace and w.identity.replicaset == rs.name and not w.terminating]

    def _pod_wanted(self, worker: PodWorker) -> bool:
        return pod_wanted(self, worker)

    def deployment_status(self, record: ObjectRecord) -> DeploymentStatus:
        """A Deployment's replica counts (what its status and the metrics report)."""
        return deployment_status(record, self._owned_replicasets(record.obj.metadata.namespace,
                                                                  record.obj.metadata.name), self._pods_of, self._clock())

    def replicaset_view(self, rs: ReplicaSetRecord) -> ReplicaSetView:
        return replicaset_view(rs, self._pods_of(rs), self._clock())

    def pods_of(self, rs: ReplicaSetRecord) -> list[PodWorker]:
        return self._pods_of(rs)

    def owned_replicasets(self, namespace: str, name: str) -> list[ReplicaSetRecord]:
        return self._owned_replicasets(namespace, name)

    def _call_at(self, when: float) -> None:
        delay = max(when - self._clock(), 0.01)
        self._timers = [t for t in self._timers if not t.cancelled() and t.when() > asyncio.get_running_loop().time()]
        self._timers.append(asyncio.get_running_loop().call_later(delay, self.kick))

    # --- the engine's events, adoption and garbage --------------------------------------------------

    async def _remove_containers(self, containers: list[ObservedContainer]) -> None:
        await remove_containers(self, containers)  # (the cluster's kubelet removes what it does not adopt)


async def _no_drain(worker: PodWorker, grace: float) -> None:
    return None


__all__ = ["REVISION_ANNOTATION", "ApplyResult", "Controller", "NodeCapacity"]

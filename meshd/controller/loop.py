"""The controller: holds the desired objects, turns them into ReplicaSets and pods with the pure plans of
`plan.py`, and runs one PodWorker per pod. It follows the driver's event stream (a dead container is seen
at once), adopts what runs after a restart, and removes labelled containers that no object wants.

Reconciliation is serial (one pass at a time, never two for one object); everything slow happens in the
pod workers, so a pass is pure bookkeeping and cheap.
"""

from __future__ import annotations

import asyncio
import functools
import os
import dataclasses
import json
import logging
import random
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from meshd.controller.admission import schedule_pending, volumes_ready
from meshd.controller.adoption import LABEL_CREATED, adopt, collect_garbage_forever, follow_events, remove_containers
from meshd.controller.backoff import BackoffPolicy
from meshd.controller.batch import BatchControllers
from meshd.controller.clusterip import IP_ADDRESS_KIND, AddressPlan, ClusterIPError, address_releases, is_address_race
from meshd.controller.servicetype import TypeFieldError, settle_type_change
from meshd.controller.events import EventLog
from meshd.controller.metrics import RECONCILE_DURATION, RECONCILES
from meshd.controller.namespaces import BUILTIN, missing_namespaces, namespace_object
from meshd.controller.persist import (
    desired_object,
    is_owned_pod,
    load_records,
    managed_fields_changed,
    migrate_state_json,
    owned_replicaset,
)
from meshd.controller.plan import (
    PodView,
    ReplicaSetView,
)
from meshd.controller.pod import PodIdentity, PodWorker, Prober
from meshd.controller.progress import Progress, ProgressWriter, with_stored_status
from meshd.controller.replicasets import ensure_bare_replicaset, reconcile_replicaset
from meshd.controller.rollouts import reconcile_deployment
from meshd.controller.podevents import PodEventRecorder
from meshd.controller.sets import SET_KINDS, WorkloadSets
from meshd.controller.records import (
    REVISION_ANNOTATION,
    DeploymentStatus,
    ObjectRecord,
    ReplicaSetRecord,
    keep_live_fields,
    template_without_hash,
)
from meshd.driver.base import (
    LABEL_AGENT,
    LABEL_MANAGED,
    LABEL_NAMESPACE,
    LABEL_OWNER,
    LABEL_OWNER_KIND,
    LABEL_POD,
    LABEL_REPLICASET,
    LABEL_TEMPLATE_HASH,
    Driver,
    ObservedContainer,
)
from meshd.external.listeners import DEFAULT_EXTERNAL, external_ports
from meshd.external.nodeports import PortClaimError, PortClaims, assign_node_ports
from meshd.manifests import ManifestError, load_documents, load_objects
from meshd.manifests.loader import API_VERSIONS
from meshd.manifests.config import check_update as check_config_update
from meshd.model.cron import known_zones
from meshd.model.security import SecuritySupport, object_refusals
from meshd.model.endpoints import PortInfo, ServiceInfo, ServiceKey
from meshd.controller.ingress import backend_problems
from meshd.model.ingress import Ingress
from meshd.model.objects import (
    CLUSTER_SCOPED,
    ConfigMap,
    Deployment,
    Job,
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
    ) -> None:
        """Without a store, start() opens STATE/store.db (and moves an old state.json into it). `security`:
        what the driver enforces of a securityContext, and whether privileged pods are allowed (not by default)."""
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
        self.batch = BatchControllers(self)  # Jobs, CronJobs, namespace deletion
        self.leading = True  # with a shared store, only the leader reconciles (meshd.cluster.leader)
        self.cluster: Any = None  # in a cluster: meshd.cluster.pods.ClusterPods, the pods of every node
        self.kubelet: Any = None  # in a cluster: meshd.cluster.kubelet.Kubelet, which runs this node's
        self.pod_objects: Any = None  # on one node: meshd.cluster.podobjects.PodObjects, its pods in the store

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
        self._load()
        if not any(k[0] == "StorageClass" for k in self.objects) and self.store.get("StorageClass", "", "local") is None:
            try:
                await self.apply(json.dumps(default_class_manifest()), source="the default StorageClass")
            except (AlreadyExists, Conflict):  # another agent on a shared store made it first
                pass
        for record in self.objects.values():
            if isinstance(record.obj, Service):
                self._publish_service(record.obj)
        await self.volume_controller.start()
        observed = await self.driver.list_managed()
        (functools.partial(adopt, self) if self.kubelet is None else self.kubelet.adopt)(observed)
        self._tasks.supervise("events", functools.partial(follow_events, self))
        self._tasks.supervise("event writes", self.events.run)
        self._tasks.supervise("deployment status writes", self.progress_writer.writer.run)
        if self.pod_objects is not None:
            self._tasks.supervise("pod objects", self.pod_objects.run)
        self._tasks.supervise("reconcile", self._reconcile_forever)
        self._tasks.supervise("gc", functools.partial(collect_garbage_forever, self))
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
                    carry_live: bool = True, check: Callable[[], None] | None = None,
                    create_namespaces: bool = True) -> tuple[list[ApplyResult], list[str]]:
        """Validates every document first; a broken one raises ManifestError and changes nothing. Every change
        is persisted in one transaction before it takes effect; one that cannot be (PersistError) changes
        nothing either.

        `namespace` (kubectl's -n) is the namespace of objects that name none; one naming another is an error.
        `carry_live=False` writes the documents as they are (the API's PUT and PATCH send whole objects: nothing of
        the live one is carried over); `check` runs under the write lock before anything is planned, to refuse
        the write (a stale resourceVersion, an object that already exists) by raising.
        An object in a namespace that does not exist is refused (KeyError, as the API server's NotFound), unless
        `create_namespaces` (meshd apply, meshd up) creates it with a warning.
        """
        loaded = await asyncio.to_thread(load_documents, text, source=source)  # big files parse off the loop
        warnings = list(loaded.warnings)
        async with self._write_lock:
            if check is not None:
                check()
            objects = [_in_namespace(o, namespace, source) for o in loaded.objects]
            missing = missing_namespaces(objects, exists=self.namespace_exists,
                                         terminating=self.batch.namespaces.terminating)
            if missing and not create_namespaces:
                raise KeyError(f'namespaces "{missing[0]}" not found')
            warnings += [f'namespace "{ns}" did not exist: created' for ns in missing]
            objects = [namespace_object(ns) for ns in missing] + objects
            for attempt in range(3):  # another agent took an address this write chose: choose again
                try:
                    results = await self._apply(objects, source, None, carry_live)
                    break
                except AlreadyExists as error:
                    if attempt == 2 or not is_address_race(error):
                        raise
            return results, warnings + self._ingress_warnings(objects)

    def namespace_exists(self, name: str) -> bool:
        return name in BUILTIN or ("Namespace", "", name) in self.objects

    def _ingress_warnings(self, objects: Iterable[KubeObject]) -> list[str]:
        """An applied Ingress naming a Service or port that does not exist (it answers 503 until it does)."""
        def service(namespace: str, name: str) -> Service | None:
            record = self.objects.get(("Service", namespace, name))
            return record.obj if record is not None and isinstance(record.obj, Service) else None

        return [f"Ingress {o.metadata.namespace}/{o.metadata.name}: {problem}" for o in objects
                if isinstance(o, Ingress) and o.served for problem in backend_problems(o, service)]

    async def _apply(self, objects: Iterable[KubeObject], source: str, namespace: str | None,
                     carry_live: bool = True) -> list[ApplyResult]:
        planned: list[tuple[KubeObject, str]] = []
        port_claims: PortClaims | None = None  # the external ports Services hold, once a Service is applied
        addresses: AddressPlan | None = None  # the Service addresses the store holds, once a Service is applied
        for obj in (_in_namespace(o, namespace, source) for o in objects):
            key = object_key(obj)
            existing = self.objects.get(key)
            if carry_live and existing is not None and isinstance(obj, (Deployment, ReplicaSet, StatefulSet)):
                carried = keep_live_fields(existing.obj.raw, obj.raw)
                if carried is not None:
                    obj = _in_namespace(load_objects([carried], source=source).objects[0], namespace, source)
            if existing is None:
                planned.append((obj, "created"))
            elif existing.obj == obj and not managed_fields_changed(existing.obj.raw, obj.raw):
                planned.append((obj, "unchanged"))
            else:
                planned.append((obj, "configured"))
            if isinstance(obj, Service):
                addresses = addresses or AddressPlan(self.store, self.addresses.pool, published={
                    i.address: i.key for i in self.registry.services() if i.address})
                obj = self._assign_cluster_ip(obj, existing, addresses, source)
                if port_claims is None:
                    port_claims = PortClaims((f"{k[1]}/{k[2]}", r.obj) for k, r in self.objects.items()
                                             if isinstance(r.obj, Service) and r.obj.type != "ClusterIP")
                obj = self._claim_external_ports(obj, existing, port_claims, source)
                planned[-1] = (obj, planned[-1][1] if existing is None or existing.obj != obj else "unchanged")
            for path, why in object_refusals(obj, self.security):  # what this agent will not run
                raise ManifestError(why, source=source, kind=obj.kind, name=obj.metadata.name, path=path)
            if isinstance(obj, Pod) and existing is None:
                self._check_pod_name_free(obj, source)
            if isinstance(obj, (ConfigMap, Secret)) and existing is not None:
                check_config_update(existing.obj, obj, source)
            if isinstance(obj, ReplicaSet) and existing is None:
                self._check_replicaset_name_free(obj, source)
            if existing is not None:
                check_immutable(existing.obj, obj, source)
        operations: list[Operation] = []
        in_batch: set[tuple[str, str, str]] = set()
        for obj, action in planned:
            key = object_key(obj)
            if action == "unchanged":
                continue
            stored = with_stored_status(desired_object(obj), self.store.get(*key))  # status: the controller's
            # an object the store holds but that did not load (see load_records) is replaced
            exists = key in in_batch or key in self.objects or self.store.get(*key) is not None
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
                    self._publish_service(obj)
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
        objects = [_in_namespace(o, namespace, source) for o in loaded.objects]
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
            await self.store.transaction([Delete(*k) for k in found if self.store.get(*k) is not None] + address_releases(
                self.store.list(IP_ADDRESS_KIND), [ServiceKey(k[1], k[2]) for k in found if k[0] == "Service"]))
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

    def _forget(self, key: tuple[str, str, str]) -> None:
        kind, namespace, name = key
        record = self.objects.pop(key, None)
        if record is None:  # a shared store's watch forgot it first (meshd.cluster.follow)
            return
        self._notify(kind, namespace, name)
        if isinstance(record.obj, Service):
            service_key = ServiceKey(namespace, name)
            address = self.registry.service(service_key)
            self.registry.delete_service(service_key)
            self.addresses.release(service_key)
            if address and address.address and self._on_service_address:
                self._on_service_address(address.address, False)
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
        owned = sorted(self._owned_replicasets(namespace, name), key=lambda r: r.revision)
        if not owned:
            raise KeyError(f'deployments "{name}" not found')
        current = owned[-1].revision
        if to_revision:
            target = next((r for r in owned if r.revision == to_revision), None)
            if target is None:
                raise ValueError(f"unable to find specified revision {to_revision} in history")
        else:
            older = [r for r in owned if r.revision < current]
            if not older:
                raise ValueError("no rollout history found for deployment " + name)
            target = older[-1]
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

    # --- services ---------------------------------------------------------------------------------

    def _assign_cluster_ip(self, service: Service, existing: ObjectRecord | None, plan: AddressPlan,
                           source: str) -> Service:
        """The Service with the address it keeps, asks for or is given (stored with it: the same on every node)."""
        before = existing.obj if existing is not None and isinstance(existing.obj, Service) else None
        try:
            service = settle_type_change(service, before)  # e.g. the clusterIP a Service turned ExternalName had
        except TypeFieldError as error:
            raise ManifestError(error.message, source=source, kind="Service", name=service.metadata.name,
                                path=error.path) from None
        published = self.registry.service(ServiceKey(service.metadata.namespace, service.metadata.name))
        current = (before.cluster_ip or (published.address if published else None)) if before else None
        try:
            return plan.assign(service, current=current if service.has_address else None)
        except ClusterIPError as error:
            raise ManifestError(str(error), source=source, kind="Service", name=service.metadata.name,
                                path=("spec", "clusterIP")) from None

    def _config_object(self, kind: str, namespace: str, name: str) -> ConfigMap | Secret | None:
        record = self.objects.get((kind, namespace, name))
        return record.obj if record is not None and isinstance(record.obj, (ConfigMap, Secret)) else None
    def _claim_external_ports(self, service: Service, existing: ObjectRecord | None, index: PortClaims,
                              source: str) -> Service:
        """The Service with its nodePorts given or allocated; a port another Service holds fails the apply."""
        owner = f"{service.metadata.namespace}/{service.metadata.name}"
        previous = existing.obj if existing is not None and isinstance(existing.obj, Service) else None
        if service.type == "ClusterIP" and (previous is None or previous.type == "ClusterIP"):
            return service  # claims nothing, held nothing: the common case costs nothing
        try:
            service = assign_node_ports(service, previous=previous, taken=index.taken_for(owner), owner=owner)
        except PortClaimError as error:
            raise ManifestError(error.message, source=source, kind="Service", name=service.metadata.name,
                                path=error.path) from None
        index.replace(owner, service)
        return service

    def _check_pod_name_free(self, pod: Pod, source: str) -> None:
        """A Pod manifest may not take the name of a pod a ReplicaSet runs (e.g. `get pod -o yaml | apply`):
        it would shadow that pod and outlive its Deployment."""
        worker = self.managed.get((pod.metadata.namespace, pod.metadata.name))
        if worker is not None and worker.identity.replicaset:
            owner = f'{worker.identity.owner_kind.lower()} "{worker.identity.owner}"'
            raise ManifestError(f'pod "{pod.metadata.name}" is run by ReplicaSet "{worker.identity.replicaset}": '
                                f"change {owner} instead", source=source, kind="Pod", name=pod.metadata.name,
                                path=("metadata", "name"))

    def _check_replicaset_name_free(self, rs: ReplicaSet, source: str) -> None:
        """A ReplicaSet manifest may not take the name of one a Deployment owns (both are ReplicaSets)."""
        owned = self.replicasets.get((rs.metadata.namespace, rs.metadata.name))
        if owned is not None and owned.owner_kind == "Deployment":
            raise ManifestError(f'replicaset "{rs.metadata.name}" is owned by Deployment "{owned.owner}"',
                                source=source, kind="ReplicaSet", name=rs.metadata.name, path=("metadata", "name"))

    def _publish_service(self, service: Service) -> None:
        key = ServiceKey(service.metadata.namespace, service.metadata.name)
        # the stored address; one stored before Services kept theirs gets its hash's, as it always did
        address = service.cluster_ip or self.addresses.allocate(key) if service.has_address else None
        if address is None:
            self.addresses.release(key)  # e.g. turned ExternalName: its old address is free again
        previous = self.registry.service(key)
        if previous and previous.address and previous.address != address and self._on_service_address:
            self._on_service_address(previous.address, False)
        if address and self._on_service_address:
            self._on_service_address(address, True)
        info = ServiceInfo(
            key=key,
            address=address,
            ports=tuple(PortInfo(p.name, p.port, p.target_port, p.protocol, p.app_protocol) for p in service.ports),
            annotations=dict(service.metadata.annotations),
            external=external_ports(service, self.external),
            traffic_distribution=service.traffic_distribution,
            external_name=service.external_name if service.type == "ExternalName" else None,
        )
        self.registry.upsert_service(info, dict(service.selector))

    # --- reconciliation ---------------------------------------------------------------------------

    async def _reconcile_forever(self) -> None:
        while True:
            await self._kick_event.wait()
            self._kick_event.clear()
            if not self.leading:
                continue
            with RECONCILE_DURATION.time():
                self.reconcile()
            RECONCILES.inc()
            if self._dirty:
                await self._persist_replicasets()
            await self.batch.flush()
            await asyncio.sleep(0)

    def reconcile(self) -> None:
        """One pass; the ReplicaSets it changes are persisted after it (_persist_replicasets)."""
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
            if not self._owner_exists(rs) and not self._pods_of(rs):
                del self.replicasets[rs_key]
                self._dirty = True
        self.sets.reconcile(now)
        for record in self.objects.values():
            if isinstance(record.obj, Pod):
                self._ensure_bare_pod(record.obj, record.created)
        self.batch.reconcile(now)
        for worker in list(self.managed.values()):
            if not worker.terminating and not self._pod_wanted(worker):
                self._terminate(worker, "owner deleted")
        self._schedule_pending()
        self._batches = {k: v for k, v in self._batches.items() if k in self.replicasets}
        self.volume_controller.reconcile()

    def _ensure_bare_pod(self, pod: Pod, created: float) -> None:
        key = (pod.metadata.namespace, pod.metadata.name)
        if self.cluster is not None:
            return self.cluster.ensure_bare(*key)  # bound once; its node's kubelet runs it
        worker = self.pods.get(key)
        if worker is not None and worker.spec != pod.spec and not worker.terminating:
            self._terminate(worker, "spec changed")  # pods are immutable: a changed one is replaced
            return
        if worker is None:
            identity = PodIdentity(pod.metadata.namespace, pod.metadata.name, "Pod", pod.metadata.name)
            self._new_worker(identity, pod.spec, dict(pod.metadata.labels), dict(pod.metadata.annotations),
                             created=created)

    def _new_worker(self, identity: PodIdentity, spec: PodSpec, labels: dict[str, str],
                    annotations: dict[str, str], *, created: float,
                    adopt: list[ObservedContainer] | None = None, bind: bool = True, node: str = "") -> PodWorker:
        """A new pod's worker; in a cluster (`bind`) the pod is bound to a node (`node`, or the scheduler's) and
        written to the store instead, and the kubelet of its node makes the worker (bind=False)."""
        if self.cluster is not None and bind:
            return self.cluster.create(identity, spec, labels, annotations, created=created, node=node)
        sandbox_labels = {
            LABEL_MANAGED: "true",
            LABEL_AGENT: self.agent_id,
            LABEL_NAMESPACE: identity.namespace,
            LABEL_POD: identity.name,
            LABEL_OWNER: identity.owner,
            LABEL_OWNER_KIND: identity.owner_kind,
            LABEL_REPLICASET: identity.replicaset,
            LABEL_TEMPLATE_HASH: identity.template_hash,
            LABEL_CREATED: f"{created:.3f}",
        }
        worker = PodWorker(
            identity=identity,
            spec=spec,
            labels=labels,
            annotations=annotations,
            driver=self.driver,
            registry=self.registry,
            sandbox_labels=sandbox_labels,
            dns_search=(f"{identity.namespace}.svc.{self.zone}", f"svc.{self.zone}", self.zone),
            backoff=self.backoff,
            on_change=self._pod_changed,
            drain=self._drain,
            make_prober=self._make_prober,
            created=created,
            adopt=adopt,
            clock=self._clock,
            node_capacity=(self.capacity.cpu_millicores, self.capacity.memory_bytes),
            config=self.pod_config,
        )
        self.pods[(identity.namespace, identity.name)] = worker
        self.registry.upsert_pod(worker.record())
        if adopt:
            worker.volume_mounts = self.volume_controller.mounts_for(worker, check=False)[0]
            worker.start()  # it runs already: no admission
        return worker

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

    def _terminate(self, worker: PodWorker, why: str) -> None:
        if self.cluster is not None and not isinstance(worker, PodWorker):
            return self.cluster.delete(worker, why)  # a Pod object: deleted through its node's kubelet
        if worker.terminating:
            return
        self.events.record("Pod", worker.namespace, worker.name, "Normal", "Killing", f"Stopping pod: {why}")
        worker.terminate()

        async def forget() -> None:
            await worker.wait_done()
            if self.pods.get((worker.namespace, worker.name)) is worker:
                del self.pods[(worker.namespace, worker.name)]
                self.registry.delete_pod(worker.namespace, worker.name)
                self._notify("Pod", worker.namespace, worker.name)
                self.kick()

        self._tasks.spawn(forget(), name=f"forget {worker.namespace}/{worker.name}")

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
        identity = worker.identity
        if identity.owner_kind == "Job":
            return self.batch.pod_wanted(worker)
        if identity.owner_kind in SET_KINDS:
            return self.sets.wanted(identity)
        if identity.replicaset:
            return (identity.namespace, identity.replicaset) in self.replicasets
        return ("Pod", identity.namespace, identity.name) in self.objects

    def _pod_view(self, worker: PodWorker, rs: ReplicaSetRecord, now: float) -> PodView:
        return PodView(
            name=worker.name,
            created=worker.created,
            scheduled=worker.scheduled,
            ready=worker.ready,
            available=worker.available(rs.rs.min_ready_seconds, now),
            restarts=worker.restarts,
            node=getattr(worker, "node", ""),  # a cluster's StoredPod
        )

    def _view(self, rs: ReplicaSetRecord, now: float) -> ReplicaSetView:
        pods = self._pods_of(rs)
        available = sum(1 for p in pods if p.available(rs.rs.min_ready_seconds, now))
        return ReplicaSetView(rs.name, rs.revision, rs.replicas, len(pods), available)

    def deployment_status(self, record: ObjectRecord) -> DeploymentStatus:
        """A Deployment's replica counts (what its status and the metrics report)."""
        deployment: Deployment = record.obj  # type: ignore[assignment]
        owned = self._owned_replicasets(deployment.metadata.namespace, deployment.metadata.name)
        current_hash = record.template_hash()
        new = next((r for r in owned if r.template_hash == current_hash), None)
        pods = [(r, p) for r in owned for p in self._pods_of(r)]
        now = self._clock()
        return DeploymentStatus(
            desired=deployment.replicas,
            current=len(pods),
            updated=sum(1 for r, _ in pods if r is new),
            ready=sum(1 for _, p in pods if p.ready),
            available=sum(1 for r, p in pods if p.available(r.rs.min_ready_seconds, now)),
            new=new,
        )

    def replicaset_view(self, rs: ReplicaSetRecord) -> ReplicaSetView:
        return self._view(rs, self._clock())

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

    # --- persistence --------------------------------------------------------------------------------

    async def _persist_replicasets(self) -> None:
        """Writes the owned ReplicaSets that changed since the last write, in one transaction; if it cannot be
        written it is tried again a little later (they are derived, and memory only runs ahead of the store)."""
        self._dirty = False
        operations: list[Operation] = []
        signatures: dict[tuple[str, str], tuple] = {}
        for key, rs in self.replicasets.items():
            if rs.owner_kind != "Deployment":
                continue  # a bare ReplicaSet's record comes from its object
            owner = self.objects.get(("Deployment", rs.namespace, rs.owner))
            previous = self._persisted_rs.get(key)
            owner_uid = owner.uid if owner else (previous[4] if previous else "")
            signatures[key] = signature = (rs.rs, rs.revision, rs.replicas, rs.uid, owner_uid)
            if previous != signature:
                row = owned_replicaset(rs, owner_uid=owner_uid)
                operations.append(Update(row) if previous is not None else Create(row))
        operations += [Delete("ReplicaSet", *key) for key in self._persisted_rs if key not in signatures
                       and ("ReplicaSet", *key) not in self.objects  # orphaned: bare now (meshd.controller.cascade)
                       and self.store.get("ReplicaSet", *key) is not None]
        if not operations:
            return
        try:
            await self.store.transaction(operations)
        except StoreError as error:
            log.error("could not persist ReplicaSets (trying again): %s", error)
            self._dirty = True
            self._call_at(self._clock() + 5)
            return
        self._persisted_rs = signatures

    def _load(self) -> None:
        loaded = load_records([o for o in self.store.list(None) if o["kind"] in API_VERSIONS  # not Node, Lease
                               and not is_owned_pod(o)],  # nor a controller's Pod object (meshd.cluster.pods)
                              where=f"state store {self.state_dir}")
        for record in loaded.objects:
            self.objects[object_key(record.obj)] = record
        for rs in loaded.replicasets:
            self.replicasets[(rs.namespace, rs.name)] = rs
            owner = self.objects.get(("Deployment", rs.namespace, rs.owner))
            self._persisted_rs[(rs.namespace, rs.name)] = (rs.rs, rs.revision, rs.replicas, rs.uid,
                                                            owner.uid if owner else "")
        for record in self.objects.values():  # bare ReplicaSets' records, so their pods are adopted
            if isinstance(record.obj, ReplicaSet):
                ensure_bare_replicaset(self, record, record.created)


def _in_namespace(obj: KubeObject, namespace: str | None, source: str) -> KubeObject:
    """The object in the namespace the user chose for objects that name none (kubectl's -n)."""
    if namespace is None or obj.kind in CLUSTER_SCOPED:
        return obj
    named = (obj.raw.get("metadata") or {}).get("namespace")
    if named is not None and named != namespace:
        raise ManifestError(f'the namespace from the provided object "{named}" does not match the namespace '
                            f'"{namespace}"', source=source, kind=obj.kind, name=obj.metadata.name,
                            path=("metadata", "namespace"))
    if named == namespace:
        return obj
    raw = json.loads(json.dumps(obj.raw))
    raw.setdefault("metadata", {})["namespace"] = namespace
    (moved,) = load_objects([raw], source=source).objects
    return moved


def check_immutable(old: KubeObject, new: KubeObject, source: str) -> None:
    """A Job's pod template and completions are immutable, as the API server keeps them."""
    if isinstance(old, Job) and isinstance(new, Job):
        for path, before, after in ((("spec", "template"), old.template, new.template),
                                    (("spec", "completions"), old.completions, new.completions),
                                    (("spec", "completionMode"), old.completion_mode, new.completion_mode)):
            if before != after:
                raise ManifestError("field is immutable", source=source, kind="Job", name=new.metadata.name,
                                    path=path)


async def _no_drain(worker: PodWorker, grace: float) -> None:
    return None


__all__ = ["REVISION_ANNOTATION", "ApplyResult", "Controller", "NodeCapacity"]

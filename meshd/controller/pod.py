"""A pod's life on this node (the kubelet's pod worker): one task per pod that starts its sandbox and
containers, restarts what dies (at once the first time, then with backoff), acts on probes, publishes
readiness to the registry, and tears the pod down in order: leave the registry, drain, SIGTERM, SIGKILL.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from meshd.controller.backoff import Backoff, BackoffPolicy, should_restart
from meshd.controller.initphase import InitState, next_init_step, pod_phase, restart_policy_for
from meshd.controller.metrics import CONTAINER_RESTARTS, restart_reason
from meshd.driver.base import (
    INFRA_CONTAINER,
    LABEL_CONTAINER,
    ContainerConfigError,
    ContainerEvent,
    ContainerSpec,
    Driver,
    DriverError,
    MountSource,
    ObservedContainer,
    Sandbox,
    SandboxSpec,
)
from meshd.model.expansion import PodFacts, resolve_env
from meshd.model.objects import Container, PodSpec
from meshd.model.security import effective_security
from meshd.registry import PodRecord, Registry
from meshd.tasks import BACKGROUND, done_within, run_supervised
from meshd.volumes.payload import ConfigError
from meshd.volumes.podconfig import PodConfig

log = logging.getLogger(__name__)
CONFIG_RETRY_SECONDS = 10  # the longest wait before a container missing a ConfigMap or Secret tries again

ContainerPhase = Literal["waiting", "running", "terminated"]


@dataclass
class ContainerStatus:
    """What `get pods` and `describe pod` show of one container; mutated only by its pod's worker."""

    name: str
    image: str
    id: str | None = None
    phase: ContainerPhase = "waiting"
    reason: str = "ContainerCreating"
    message: str = ""
    restart_count: int = 0
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    ready: bool = False
    last_termination: dict | None = None
    backoff: Backoff = field(default_factory=Backoff)
    restart_at: float | None = None  # when a backed-off restart (or a failed start's retry) is due
    previous_id: str | None = None  # the instance before this one, kept (stopped) for `logs --previous`
    start_failures: int = 0  # consecutive failures to create the container (image pulls)
    oom: bool = False


def _ever_started(status: ContainerStatus) -> bool:
    """A container that ran once (its pod is Running while it waits to restart, as in Kubernetes); one whose
    image never pulled or whose config is missing keeps its pod Pending."""
    return status.started_at is not None or status.restart_count > 0 or status.last_termination is not None


@dataclass(frozen=True)
class PodIdentity:
    namespace: str
    name: str
    owner_kind: str
    owner: str
    replicaset: str = ""
    template_hash: str = ""


Prober = Callable[["PodWorker", Container], "ProberHandle | None"]


def pod_uid_of(namespace: str, name: str, created: float) -> str:
    """A pod's uid: stable for the pod's life, across agent restarts too (from its name and creation time)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"meshd:pod/{namespace}/{name}/{created:.3f}"))


def finished_to_keep(restart_policy: str, found: list[ObservedContainer]) -> ObservedContainer | None:
    """Adoption: of a container's instances found stopped (none running), the last one when the pod's
    restartPolicy would not restart it, so a finished pod stays finished; None means start a new one."""
    if not found:
        return None
    last = max(found, key=lambda o: (o.restart_count, o.finished_at or 0.0))
    if last.state != "exited" or should_restart(restart_policy, last.exit_code):
        return None
    return last


class ProberHandle:
    """What the pod worker needs from a container's probes (see meshd.controller.probes)."""

    ready: bool = True
    reason: str = ""  # why not ready

    def stop(self) -> None: ...


class PodWorker:
    def __init__(
        self,
        *,
        identity: PodIdentity,
        spec: PodSpec,
        labels: dict[str, str],
        annotations: dict[str, str],
        driver: Driver,
        registry: Registry,
        sandbox_labels: dict[str, str],
        dns_search: tuple[str, ...],
        backoff: BackoffPolicy,
        on_change: Callable[[PodWorker], None],
        drain: Callable[[PodWorker, float], Awaitable[None]],
        make_prober: Prober | None = None,
        created: float | None = None,
        adopt: list[ObservedContainer] | None = None,
        clock: Callable[[], float] = time.time,
        node_capacity: tuple[int, int] = (0, 0),  # cpu millicores, memory bytes: what unset limits read as
        config: PodConfig | None = None,  # ConfigMaps, Secrets, the downward API's files (meshd.volumes)
        uid: str = "",
    ) -> None:
        """`uid`: the pod's uid when its stored Pod object names it (adopted from the store); else it is made from
        the pod's name and creation time (pod_uid_of)."""
        self.identity = identity
        self.spec = spec
        self.labels = labels
        self.annotations = annotations
        self.created = created if created is not None else clock()
        self.uid = uid or pod_uid_of(identity.namespace, identity.name, self.created)
        # init containers first (`logs -c`, `exec -c` find them here too), then the app containers
        waiting = "PodInitializing" if spec.init_containers else "ContainerCreating"
        self.containers = {c.name: ContainerStatus(c.name, c.image, reason=waiting)
                           for c in (*spec.init_containers, *spec.containers)}
        self.initialized = not spec.init_containers
        self.init_failed = False
        self._sidecars_started: set[str] = set()
        self._sidecars_done = False  # the pod finished: its sidecars stopped for good
        self.sandbox: Sandbox | None = None
        self.phase = "Pending"
        self.reason = ""
        self.message = ""
        self.scheduled = False
        self.volume_mounts: Mapping[str, MountSource] = {}  # claim and hostPath volumes' sources, set at admission
        self.terminating = False
        self.ready_since: float | None = None
        self._driver = driver
        self._registry = registry
        self._sandbox_labels = sandbox_labels
        self._dns_search = dns_search
        self._backoff = backoff
        self._on_change = on_change
        self._drain = drain
        self._make_prober = make_prober
        self._clock = clock
        self._adopt = adopt or []
        self._node_capacity = node_capacity
        self._config = config
        self._probers: dict[str, ProberHandle] = {}
        self._events: asyncio.Queue[ContainerEvent | tuple[str, str, str]] = asyncio.Queue()
        self._terminate = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._lived = False  # the worker has started once: a new start means it crashed
        self.done = asyncio.Event()

    # --- identity and views -----------------------------------------------------------------------

    @property
    def namespace(self) -> str:
        return self.identity.namespace

    @property
    def name(self) -> str:
        return self.identity.name

    @property
    def address(self) -> str | None:
        return self.sandbox.address if self.sandbox else None

    @property
    def ready(self) -> bool:
        return self.phase == "Running" and not self.terminating and all(
            self.containers[name].ready for name in self._counted())

    def _counted(self) -> list[str]:
        """The containers readiness counts: the app containers and the native sidecars."""
        return [c.name for c in (*self.spec.init_containers, *self.spec.containers)
                if c.restart_policy == "Always" or c in self.spec.containers]

    def is_init(self, name: str) -> bool:
        return any(c.name == name for c in self.spec.init_containers)

    def container_started(self, name: str) -> bool:
        """status.containerStatuses[].started: running, and its startup probe passed (sidecars)."""
        status = self.containers[name]
        if status.phase != "running":
            return False
        return name in self._sidecars_started if self.is_init(name) else True

    def _spec_of(self, name: str) -> Container:
        return next(c for c in (*self.spec.init_containers, *self.spec.containers) if c.name == name)

    def _policy(self, name: str) -> str:
        return restart_policy_for(self.spec.restart_policy, self._spec_of(name), init=self.is_init(name))

    @property
    def restarts(self) -> int:
        return sum(c.restart_count for c in self.containers.values())

    def available(self, min_ready_seconds: float, now: float) -> bool:
        return self.ready and self.ready_since is not None and now - self.ready_since >= min_ready_seconds

    def container_ids(self) -> set[str]:
        ids = {c.id for c in self.containers.values() if c.id} | self._previous_ids()
        if self.sandbox:
            ids.add(self.sandbox.id)
        return ids

    def _previous_ids(self) -> set[str]:
        return {c.previous_id for c in self.containers.values() if c.previous_id}

    # --- control ----------------------------------------------------------------------------------

    def start(self) -> None:
        self.scheduled = True
        self._task = asyncio.create_task(self._run(), name=f"pod {self.namespace}/{self.name}")

    def deliver(self, event: ContainerEvent) -> None:
        self._events.put_nowait(event)

    def request_restart(self, container: str, reason: str, message: str) -> None:
        """A liveness or startup probe failed: the container is replaced."""
        self._events.put_nowait((container, reason, message))

    def probe_changed(self) -> None:
        if not self.initialized:  # a sidecar's startup probe may have passed: the next init container's turn
            self._events.put_nowait(("", "", ""))
        self._publish()

    def terminate(self) -> None:
        self.terminating = True
        self._terminate.set()
        if self._task is None:  # never scheduled: nothing runs
            self.done.set()
        self._publish()

    async def wait_done(self) -> None:
        await self.done.wait()

    async def detach(self) -> None:
        """Stops following the pod and leaves its containers running (a later agent adopts them)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.stop_probers()

    def stop_probers(self) -> None:
        for name in list(self._probers):
            self._stop_prober(name)

    def probe_reports(self, container: str) -> list[dict] | None:
        """The container's probes and their last results (for `describe`), None when it has none running."""
        prober = self._probers.get(container)
        describe = getattr(prober, "describe", None)
        return describe() if callable(describe) else None

    # --- the worker ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await run_supervised(f"pod {self.namespace}/{self.name}", self._work, initial=0.5,
                                 until=self._terminate.is_set)
        finally:
            if self._terminate.is_set():
                await asyncio.shield(self._tear_down())
            self.done.set()

    async def _work(self) -> None:
        """The worker's life; after a crash it starts again from what the engine runs (as after an agent
        restart), so a pod is never left half made."""
        if self._lived:
            await self._recover()
        self._lived = True
        await self._bring_up()
        while not self._terminate.is_set():
            await self._step()

    async def _recover(self) -> None:
        self.stop_probers()
        mine = [o for o in await self._driver.list_managed() if o.namespace == self.namespace and o.pod == self.name]
        self._adopt = mine
        self.sandbox = None
        for status in self.containers.values():
            status.id, status.restart_at, status.ready = None, None, False
        log.info("pod %s/%s: worker recovering from the engine's %d containers", self.namespace, self.name,
                 len(mine))

    async def _bring_up(self) -> None:
        delay = 0.5
        while not self._terminate.is_set():
            try:
                await self._ensure_sandbox()
                break
            except DriverError as error:
                self.reason, self.message = "DriverError", str(error)
                self._publish()
                log.warning("pod %s/%s: %s (retrying in %.1fs)", self.namespace, self.name, error, delay)
                await self._wait_terminate(delay)
                delay = min(delay * 2, 10)
        if self._terminate.is_set():
            return
        if not self.initialized and any(o.labels.get(LABEL_CONTAINER) in {c.name for c in self.spec.containers}
                                        for o in self._adopt):
            self.initialized = True  # an agent restart: the app containers ran, so initialization was done
        if self.initialized:
            await asyncio.gather(*(self._ensure_container(c, start=not self._plain_init(c))
                                   for c in (*self.spec.init_containers, *self.spec.containers)))
            for c in self.spec.init_containers:
                self._mark_completed(c)
            self._sidecars_started.update(c.name for c in self.spec.init_containers if c.restart_policy)
            self._update_phase()
            self._publish()
            return
        await asyncio.gather(*(self._ensure_container(c, start=False) for c in self.spec.init_containers))
        await self._advance()

    def _plain_init(self, container: Container) -> bool:
        return container.restart_policy is None and self.is_init(container.name)

    def _mark_completed(self, container: Container) -> None:
        """A plain init container of an initialized pod whose instance is gone shows as Completed."""
        status = self.containers[container.name]
        if self._plain_init(container) and status.id is None and status.phase != "terminated":
            status.phase, status.reason, status.exit_code = "terminated", "Completed", 0

    async def _advance(self) -> None:
        """Runs the init sequence on: starts the next init container, or the app containers once done."""
        while not self.initialized and not self.init_failed and not self._terminate.is_set():
            self._note_sidecars_started()
            step = next_init_step([self._init_state(c) for c in self.spec.init_containers])
            if step.action == "wait":
                return
            if step.action == "failed":
                self.init_failed = True
                self._update_phase()
                self._publish()
                await self._stop_sidecars()
                return
            if step.action == "start":
                status = self.containers[step.name]
                await self._try_start(self._spec_of(step.name), status)
                if status.id is None:  # it could not start (retried later)
                    return
                continue
            self.initialized = True
            log.info("pod %s/%s: initialized; starting the app containers", self.namespace, self.name)
            await asyncio.gather(*(self._try_start(c, self.containers[c.name]) for c in self.spec.containers))
            self._update_phase()
            self._publish()

    async def _stop_sidecars(self) -> None:
        """The app containers are done for good (or initialization failed): the native sidecars stop, in
        reverse order, and are not restarted, so the pod can finish (a Job's pod with a sidecar completes)."""
        if self._sidecars_done:
            return
        self._sidecars_done = True
        for c in reversed(self.spec.init_containers):
            status = self.containers[c.name]
            if c.restart_policy and status.id and status.phase == "running":
                await self._stop_container(status.id, grace=self.spec.termination_grace_period_seconds)
            status.restart_at = None

    def _init_state(self, container: Container) -> InitState:
        status = self.containers[container.name]
        return InitState(name=container.name, sidecar=container.restart_policy == "Always", phase=status.phase,
                         exit_code=status.exit_code, has_instance=status.id is not None,
                         pending=status.restart_at is not None, started=container.name in self._sidecars_started)

    def _note_sidecars_started(self) -> None:
        for c in self.spec.init_containers:
            status = self.containers[c.name]
            if c.restart_policy and status.phase == "running" and c.name not in self._sidecars_started:
                prober = self._probers.get(c.name)
                if prober is None or c.startup_probe is None or getattr(prober, "started", prober.ready):
                    self._sidecars_started.add(c.name)

    async def _step(self) -> None:
        now = self._clock()
        due = [c.restart_at for c in self.containers.values() if c.restart_at is not None]
        timeout = max(min(due) - now, 0) if due else None
        getter = asyncio.ensure_future(self._events.get())
        stopper = asyncio.ensure_future(self._terminate.wait())
        try:
            done, _ = await asyncio.wait({getter, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when the worker is cancelled (detached): no waiter outlives it
            for future in (getter, stopper):
                if not future.done():
                    future.cancel()
        if getter in done:
            await self._handle(getter.result())
        await self._restart_due()
        await self._advance()

    async def _handle(self, event: ContainerEvent | tuple[str, str, str]) -> None:
        if isinstance(event, tuple):
            name, reason, message = event
            if not name:  # a nudge: the init sequence may go on (see probe_changed)
                return
            status = self.containers.get(name)
            if status is None or status.phase != "running" or status.id is None:
                return
            log.info("pod %s/%s: container %s: %s: %s", self.namespace, self.name, name, reason, message)
            old_id = status.id
            self._stop_prober(name)
            status.ready = False
            self._publish()
            await self._stop_container(old_id, grace=self.spec.termination_grace_period_seconds)
            if status.id == old_id:  # the die event may have handled it meanwhile
                self._container_ended(status, exit_code=137, reason=reason, message=message)
                await self._schedule_restart(status, force=True)
            return
        if self.sandbox and event.id == self.sandbox.id:
            if event.action in ("die", "destroy"):
                await self._replace_sandbox()
            return
        status = next((c for c in self.containers.values() if c.id == event.id), None)
        if status is None:
            return
        if event.action == "oom":
            status.oom = True
            return
        if event.action in ("die", "destroy") and status.phase == "running":
            self._stop_prober(status.name)
            exit_code = event.exit_code if event.exit_code is not None else 137
            reason = "OOMKilled" if status.oom else ("Completed" if exit_code == 0 else "Error")
            self._container_ended(status, exit_code=exit_code, reason=reason, message="")
            await self._schedule_restart(status)

    def _container_ended(self, status: ContainerStatus, *, exit_code: int, reason: str, message: str) -> None:
        now = self._clock()
        status.phase = "terminated"
        status.ready = False
        status.exit_code = exit_code
        status.reason = reason
        status.message = message
        status.finished_at = now
        status.last_termination = {
            "exitCode": exit_code,
            "reason": reason,
            "message": message,
            "startedAt": status.started_at,
            "finishedAt": now,
        }
        status.oom = False
        self._publish()

    async def _schedule_restart(self, status: ContainerStatus, *, force: bool = False) -> None:
        if self._terminate.is_set() or (self._sidecars_done and self.is_init(status.name)):
            return
        if not force and not should_restart(self._policy(status.name), status.exit_code):
            self._update_phase()
            self._publish()
            if self.phase in ("Succeeded", "Failed"):
                await self._stop_sidecars()
            return
        delay = status.backoff.delay(self._backoff, now=self._clock())
        if delay <= 0:
            await self._restart(status)
        else:
            status.phase = "waiting"
            status.reason = "CrashLoopBackOff"
            status.message = f"back-off {delay:g}s restarting failed container={status.name}"
            status.restart_at = self._clock() + delay
            self._publish()

    async def _restart_due(self) -> None:
        now = self._clock()
        for status in self.containers.values():
            if status.restart_at is not None and status.restart_at <= now and not self._terminate.is_set():
                await self._restart(status)

    async def _restart(self, status: ContainerStatus) -> None:
        status.restart_at = None
        container = self._spec_of(status.name)
        if status.id is None:  # it never started (image missing, engine error): try again, no restart counted
            await self._try_start(container, status)
            return
        CONTAINER_RESTARTS.labels(restart_reason((status.last_termination or {}).get("reason", ""))).inc()
        old_id, status.id = status.id, None
        status.restart_count += 1
        status.backoff = status.backoff.started(self._backoff, now=self._clock())
        if status.previous_id:  # one stopped instance is kept, as the kubelet keeps one for `logs --previous`
            BACKGROUND.spawn(self._remove_quietly(status.previous_id), name=f"remove {status.previous_id[:12]}")
        status.previous_id = old_id
        await self._try_start(container, status)

    async def _replace_sandbox(self) -> None:
        """The infra container died: every container goes with it and the pod starts again."""
        log.info("pod %s/%s: sandbox died; recreating the pod's containers", self.namespace, self.name)
        for status in self.containers.values():
            self._stop_prober(status.name)
            status.ready = False
        old = [c.id for c in self.containers.values() if c.id]
        await asyncio.gather(*(self._stop_container(cid, grace=0) for cid in old))
        await asyncio.gather(*(self._remove_quietly(cid) for cid in {*old, *self._previous_ids()}))
        if self.sandbox:
            await self._remove_quietly(self.sandbox.id, sandbox=True)
        self.sandbox = None
        self._publish()
        for status in self.containers.values():
            CONTAINER_RESTARTS.labels("sandbox").inc()
            status.id, status.restart_at, status.previous_id = None, None, None
            status.restart_count += 1
            status.backoff = status.backoff.started(self._backoff, now=self._clock())
        if self.spec.init_containers:  # a new sandbox initializes again, as the kubelet does
            self.initialized, self.init_failed = False, False
            self._sidecars_started.clear()
            for status in self.containers.values():
                status.phase, status.reason, status.exit_code = "waiting", "PodInitializing", None
            await self._advance()
            return
        await asyncio.gather(*(self._try_start(c, self.containers[c.name]) for c in self.spec.containers))

    # --- driver calls -----------------------------------------------------------------------------

    async def _ensure_sandbox(self) -> None:
        if self.sandbox is not None:
            return
        infra = next((o for o in self._adopt if o.is_infra and o.state == "running"), None)
        if infra is not None and infra.address:
            self.sandbox = Sandbox(infra.id, infra.address)
            self._adopt = [o for o in self._adopt if o is not infra]
        else:
            for stale in [o for o in self._adopt if o.is_infra]:
                await self._remove_quietly(stale.id, sandbox=True)
            self.sandbox = await self._driver.create_sandbox(self._sandbox_spec())
        self._publish()

    def _facts(self, address: str) -> PodFacts:
        return PodFacts(
            name=self.name, namespace=self.namespace, uid=f"{self.namespace}-{self.name}",  # as the API shows
            node_name=self._registry.node or "meshd", pod_ip=address, labels=self.labels,
            annotations=self.annotations, node_cpu_millicores=self._node_capacity[0],
            node_memory_bytes=self._node_capacity[1],
        )

    def facts(self) -> PodFacts:
        """What the downward API reads of this pod now."""
        return self._facts(self.address or "")

    def _sandbox_spec(self) -> SandboxSpec:
        return SandboxSpec(
            namespace=self.namespace,
            pod=self.name,
            hostname=self.spec.hostname or self.name,
            labels=self._sandbox_labels,
            volumes=self.spec.volumes,
            share_process_namespace=self.spec.share_process_namespace,
            dns_search=self._dns_search,
            mounts=self.volume_mounts,
            fs_group=self.spec.security_context.fs_group if self.spec.security_context else None,
        )

    async def _ensure_container(self, container: Container, *, start: bool = True) -> None:
        """Adopts the container's instances found on the engine; starts one (with `start`) when none runs."""
        status = self.containers[container.name]
        mine = [o for o in self._adopt if o.labels.get(LABEL_CONTAINER) == container.name]
        running = next((o for o in mine if o.state == "running"), None)
        finished = None if running is not None else finished_to_keep(self._policy(container.name), mine)
        exited = [o for o in mine if o is not running and o is not finished]
        previous = max(exited, key=lambda o: (o.restart_count, o.finished_at or 0.0), default=None)
        for other in exited:
            if other is not previous:
                await self._remove_quietly(other.id)
        status.previous_id = previous.id if previous is not None else None
        if running is not None:
            status.id = running.id
            status.restart_count = running.restart_count
            status.phase, status.reason = "running", ""
            status.started_at = running.started_at or self._clock()
            status.backoff = Backoff(restarts=0, last_start=status.started_at)
            self._watch_container(container, status)
            return
        if finished is not None:  # it ended and its restartPolicy keeps it so (Never, OnFailure after 0)
            self._adopt_finished(status, finished)
            return
        if mine:  # it exited while the agent was away: that counts as a restart
            status.restart_count = max(o.restart_count for o in mine) + 1
        if start:
            await self._try_start(container, status)

    def _adopt_finished(self, status: ContainerStatus, finished: ObservedContainer) -> None:
        exit_code = finished.exit_code if finished.exit_code is not None else 137
        status.id = finished.id
        status.restart_count = finished.restart_count
        status.phase, status.ready, status.exit_code = "terminated", False, exit_code
        status.reason = "OOMKilled" if finished.oom_killed else ("Completed" if exit_code == 0 else "Error")
        status.started_at, status.finished_at = finished.started_at, finished.finished_at
        self._update_phase()
        self._publish()

    async def _try_start(self, container: Container, status: ContainerStatus) -> None:
        """Starts the container; an image or engine failure is retried later with a growing delay."""
        try:
            await self._ensure_sandbox()
            await self._start_container(container, status)
        except ConfigError as error:  # a ConfigMap or Secret missing: retried until it appears
            status.start_failures += 1
            status.phase, status.reason, status.message = "waiting", error.reason, str(error)
            status.restart_at = self._clock() + min(2 ** (status.start_failures - 1), CONFIG_RETRY_SECONDS)
            log.warning("pod %s/%s: container %s: %s", self.namespace, self.name, container.name, error)
            self._publish()
            return
        except DriverError as error:
            status.start_failures += 1
            pull = "pull" in str(error) or "image" in str(error).lower()
            status.phase = "waiting"
            status.reason = ("ErrImagePull" if status.start_failures == 1 else "ImagePullBackOff") if pull \
                else "CreateContainerError"
            if isinstance(error, ContainerConfigError):  # the kubelet's reason: the spec, not the engine
                status.reason = "CreateContainerConfigError"
            status.message = str(error)
            delay = min(self._backoff.initial * 2 ** (status.start_failures - 1), self._backoff.maximum)
            status.restart_at = self._clock() + delay
            log.warning("pod %s/%s: container %s: %s (retrying in %.0fs)", self.namespace, self.name,
                        container.name, error, delay)
            self._publish()
            return
        status.start_failures = 0
        if status.backoff.last_start is None:
            status.backoff = status.backoff.first_start(now=self._clock())

    async def _start_container(self, container: Container, status: ContainerStatus) -> None:
        assert self.sandbox is not None
        facts = self._facts(self.sandbox.address)
        prepared = await self._config.prepare(facts, self.spec, container) if self._config else None
        status.phase, status.reason, status.message = "waiting", "ContainerCreating", ""
        self._publish()
        status.id = await self._driver.start_container(
            ContainerSpec(
                sandbox=self.sandbox,
                spec=self._sandbox_spec(),
                container=resolve_env(prepared.container if prepared else container,
                                      (*self.spec.init_containers, *self.spec.containers), facts),
                restart_count=status.restart_count,
                mount_sources=prepared.mount_sources if prepared else {},
                registry_auth=prepared.registry_auth if prepared else None,
                security=effective_security(self.spec, container),
                pod_ref=f"{self.name}_{self.namespace}({self.uid})",
            )
        )
        status.phase, status.reason = "running", ""
        status.started_at = self._clock()
        status.exit_code = None
        self._watch_container(container, status)

    def _watch_container(self, container: Container, status: ContainerStatus) -> None:
        self._stop_prober(container.name)
        prober = self._make_prober(self, container) if self._make_prober else None
        if prober is None:
            status.ready = True
        else:
            self._probers[container.name] = prober
            status.ready = prober.ready
        self._update_phase()
        self._publish()

    def _stop_prober(self, name: str) -> None:
        prober = self._probers.pop(name, None)
        if prober is not None:
            prober.stop()

    async def _stop_container(self, container_id: str, *, grace: float) -> None:
        try:
            await self._driver.stop_container(container_id, grace_seconds=grace)
        except DriverError as error:
            log.warning("pod %s/%s: stop %s: %s", self.namespace, self.name, container_id[:12], error)

    async def _remove_quietly(self, container_id: str, *, sandbox: bool = False) -> None:
        try:
            if sandbox:
                await self._driver.remove_sandbox(container_id)
            else:
                await self._driver.remove_container(container_id)
        except DriverError as error:
            log.warning("pod %s/%s: remove %s: %s", self.namespace, self.name, container_id[:12], error)

    async def _tear_down(self) -> None:
        """Leave the registry, wait for the sidecars to drain, then SIGTERM and SIGKILL after the grace period."""
        self.terminating = True
        self._publish()
        grace = self.spec.termination_grace_period_seconds
        started = self._clock()
        try:
            await asyncio.wait_for(self._drain(self, grace), timeout=grace)
        except TimeoutError:
            pass
        self.stop_probers()
        # the app containers stop first, then the native sidecars (in reverse order), as the kubelet does
        sidecars = [c for c in reversed(self.spec.init_containers) if c.restart_policy]
        for group in (list(self.spec.containers), *([c] for c in sidecars)):
            await asyncio.gather(*(self._run_pre_stop(c, deadline=started + grace) for c in group))
            remaining = max(grace - (self._clock() - started), 0)
            group_ids = [self.containers[c.name].id for c in group]
            await asyncio.gather(*(self._stop_container(cid, grace=remaining) for cid in group_ids if cid))
        ids = [c.id for c in self.containers.values() if c.id]
        await asyncio.gather(*(self._stop_container(cid, grace=0) for cid in ids))
        await asyncio.gather(*(self._remove_quietly(cid) for cid in {*ids, *self._previous_ids()}))
        if self.sandbox:
            await self._remove_quietly(self.sandbox.id, sandbox=True)
        now = self._clock()
        for status in self.containers.values():
            if status.phase == "running" or status.exit_code is None:  # stopped here: as an unknown exit (137)
                status.exit_code, status.reason = 137, "Error"
                status.finished_at = status.finished_at or now
            status.phase, status.ready = "terminated", False
        self._registry.delete_pod(self.namespace, self.name)
        if self._config is not None:
            await self._config.forget(self.namespace, self.name)
        self._on_change(self)

    async def _run_pre_stop(self, container: Container, *, deadline: float) -> None:
        """lifecycle.preStop, within what is left of the grace period (a failure is logged, not fatal)."""
        hook, status = container.pre_stop, self.containers[container.name]
        budget = deadline - self._clock()
        if hook is None or status.phase != "running" or not status.id or budget <= 0:
            return
        try:
            if hook.sleep_seconds is not None:
                await asyncio.sleep(min(hook.sleep_seconds, budget))
            elif hook.exec_command:
                result = await self._driver.exec(status.id, hook.exec_command, timeout=budget)
                if result.exit_code != 0:
                    log.warning("pod %s/%s: preStop of %s exited %d", self.namespace, self.name, container.name,
                                result.exit_code)
        except DriverError as error:
            log.warning("pod %s/%s: preStop of %s: %s", self.namespace, self.name, container.name, error)

    async def _wait_terminate(self, seconds: float) -> None:
        await done_within(self._terminate.wait(), seconds)

    # --- publishing -------------------------------------------------------------------------------

    def _update_phase(self) -> None:
        app = [self.containers[c.name] for c in self.spec.containers]
        self.phase = pod_phase(initialized=self.initialized, init_failed=self.init_failed,
                               app=[(c.phase, c.exit_code, c.restart_at is not None and _ever_started(c))
                                    for c in app],
                               current=self.phase)
        self.reason = ""

    def _publish(self) -> None:
        for name, prober in self._probers.items():
            status = self.containers[name]
            status.ready = status.phase == "running" and prober.ready
        ready = self.ready
        if ready and self.ready_since is None:
            self.ready_since = self._clock()
        elif not ready:
            self.ready_since = None
        self._registry.upsert_pod(self.record())
        self._on_change(self)

    def probe_complaint(self, name: str) -> str:
        """What a running container's probes say ("Readiness probe failed: ..."); "" without probes."""
        prober = self._probers.get(name)
        return prober.reason if prober is not None and self.containers[name].phase == "running" else ""

    def _why_not_ready(self, status: ContainerStatus) -> str:
        prober = self._probers.get(status.name)
        if status.phase == "running" and prober is not None and prober.reason:
            return prober.reason
        return status.reason or "not ready"

    def record(self) -> PodRecord:
        named_ports = {p.name: p.container_port for c in self.spec.containers for p in c.ports if p.name}
        counted = [self.containers[name] for name in self._counted()]
        not_ready = [f"{c.name}: {self._why_not_ready(c)}" for c in counted if not c.ready]
        return PodRecord(
            namespace=self.namespace,
            name=self.name,
            labels=self.labels,
            address=self.address,
            named_ports=named_ports,
            ready=self.ready,
            reason="; ".join(not_ready) if not_ready else ("terminating" if self.terminating else ""),
            hostname=self.spec.hostname or "",
            subdomain=self.spec.subdomain or "",
            terminating=self.terminating,
        )


__all__ = ["INFRA_CONTAINER", "ContainerStatus", "PodIdentity", "PodWorker"]

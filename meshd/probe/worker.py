"""Probe workers: one asyncio task per (container, probe kind), and `ContainerProber` owning a container's three.

`ProbeWorker` sleeps `initial_delay` plus a jitter uniform in [0, period) (injected RNG), then probes every
`period_seconds` on a fixed grid (a probe longer than the period is followed at once by the next),
each probe under its own timeout, feeds its `ProbeTracker` and calls `on_transition(kind, transition)` only
when the published state changes. A probe never delays another: each worker is its own task.

`ContainerProber(container, host=pod address, exec_run=driver exec for this container, port_map=, on_change=,
on_restart=)` probes one running container instance (`port_map`: containerPort -> the port to dial, when the
pod is reached through published host ports on 127.0.0.1 rather than on its own address):
  - `start()`: the container is running; probing begins with fresh trackers (a container without startup
    and readiness probes is ready at once: `on_change(True, ...)` is called from `start()`).
  - while a startup probe is declared and has not succeeded, liveness and readiness do not run; once it
    succeeds they start (their initialDelaySeconds counts from `start()`, no extra jitter).
  - `on_change(ready, reason)` on every change of `ready`; `on_failure(reason)` when a probe starts failing
    (or fails another way: the pod's Unhealthy event); `on_restart(reason)` once when liveness or startup fails
    ("Liveness probe failed: ..."). The container is unready at that moment and probing stops (the kubelet's
    on-hold) until the owner calls `stop()` and, for the new container, `start()` again.
  - `stop(reason=)`: cancels the workers and awaits them (no leaked task); a ready container turns unready
    with `reason` (use it when the container died: the Docker event, not the next probe, ends readiness).
  - `ready`, `health` and `reports()` (per probe: spec, state, last result) for `describe`.
Callbacks are plain functions called on the loop; they must not block (schedule async work yourself).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from meshd.model.objects import Container, ExecAction, GRPCAction, HTTPGetAction, Probe, TCPSocketAction
from meshd.probe.exec import ExecRun, probe_exec
from meshd.probe.grpc import probe_grpc
from meshd.probe.http import probe_http
from meshd.probe.metrics import PROBE_DURATION, PROBE_TOTAL, READINESS_TRANSITIONS
from meshd.probe.result import ProbeResult
from meshd.probe.tcp import probe_tcp
from meshd.probe.tracker import (
    ContainerHealth,
    Kind,
    ProbeStatus,
    ProbeTracker,
    State,
    Transition,
    container_health,
)
from meshd.tasks import run_supervised

log = logging.getLogger(__name__)

ProbeCall = Callable[[float], Awaitable[ProbeResult]]  # timeout seconds -> result
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

MIN_PERIOD = 0.05  # seconds; guards against a busy loop on a zero period
TIMEOUT_GRACE = 0.5  # a probe call overrunning its own timeout by this much is cut off as a failure


def probe_call(
    probe: Probe,
    *,
    container: Container,
    host: str,
    exec_run: ExecRun | None,
    port_map: Mapping[int, int] | None = None,
) -> ProbeCall:
    """The I/O of one declared probe: named ports resolve via the container, `httpGet.host` overrides `host`,
    and `port_map` (containerPort -> the port reachable from here, e.g. a published host port) applies last."""
    handler = probe.handler
    if isinstance(handler, ExecAction):
        command = handler.command
        if exec_run is None:
            return _error_call("exec probes need the driver's exec for this container")
        run = exec_run
        return lambda timeout: probe_exec(run=run, command=command, timeout=timeout)
    port = container.port_number(handler.port)
    if port is None:
        return _error_call(
            f"port {handler.port!r} is not a containerPort name of container {container.name!r}"
        )
    port = (port_map or {}).get(port, port)
    if isinstance(handler, HTTPGetAction):
        http = handler
        target = http.host or host
        return lambda timeout: probe_http(
            host=target,
            port=port,
            path=http.path,
            headers=http.http_headers,
            scheme=http.scheme,
            timeout=timeout,
        )
    if isinstance(handler, TCPSocketAction):
        return lambda timeout: probe_tcp(host=host, port=port, timeout=timeout)
    if isinstance(handler, GRPCAction):
        service = handler.service
        return lambda timeout: probe_grpc(host=host, port=port, service=service, timeout=timeout)
    return _error_call(f"unsupported probe handler {type(handler).__name__}")


def _error_call(message: str) -> ProbeCall:
    async def call(timeout: float) -> ProbeResult:
        return ProbeResult("error", message, 0.0)

    return call


class ProbeWorker:
    """Runs one probe of one container instance periodically; publishes tracker transitions only."""

    def __init__(
        self,
        *,
        kind: Kind,
        probe: Probe,
        call: ProbeCall,
        on_transition: Callable[[Kind, Transition], None],
        initial_delay: float | None = None,
        jitter: bool = True,
        rng: random.Random | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        name: str = "",
    ) -> None:
        self.kind: Kind = kind
        self.probe = probe
        self.tracker = ProbeTracker(probe, kind)
        self._call = call
        self._on_transition = on_transition
        self._initial_delay = probe.initial_delay_seconds if initial_delay is None else initial_delay
        self._jitter = jitter
        self._rng = rng or random.Random()
        self._clock = clock
        self._sleep = sleep
        self._name = name or kind
        self._task: asyncio.Task[None] | None = None
        self._halted = False
        self._total = {o: PROBE_TOTAL.labels(kind, o) for o in ("success", "failure", "error")}
        self._duration = PROBE_DURATION.labels(kind)

    @property
    def period(self) -> float:
        return max(MIN_PERIOD, float(self.probe.period_seconds))

    @property
    def last(self) -> ProbeResult | None:
        return self.tracker.last

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(
                run_supervised(f"probe {self._name}", self._run, until=lambda: self._halted),
                name=f"probe {self._name}")

    def halt(self) -> None:
        """Stops probing (the kubelet's on-hold); safe to call from this worker's own callback."""
        self._halted = True
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    async def stop(self) -> None:
        """Cancels the task and waits for it to end."""
        self.halt()
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def probe_once(self) -> ProbeResult:
        """Runs the probe once under its timeout; never raises (except cancellation)."""
        timeout = max(0.001, float(self.probe.timeout_seconds))
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout + TIMEOUT_GRACE):
                result = await self._call(timeout)
        except TimeoutError:
            result = ProbeResult(
                "failure", f"probe timed out after {timeout:g}s", time.perf_counter() - started
            )
        except Exception as exc:
            log.exception("%s probe %s raised", self.kind, self._name)
            result = ProbeResult("error", f"{type(exc).__name__}: {exc}", time.perf_counter() - started)
        self._total[result.outcome].inc()
        self._duration.observe(result.duration)
        return result

    async def _run(self) -> None:
        delay = self._initial_delay + (self._rng.random() * self.period if self._jitter else 0.0)
        due = self._clock() + delay
        if delay > 0:
            await self._sleep(delay)
        while not self._halted:
            result = await self.probe_once()
            if self._halted:
                return
            transition = self.tracker.observe(result)
            if transition is not None:
                try:
                    self._on_transition(self.kind, transition)
                except Exception:
                    log.exception("on_transition for %s probe %s raised", self.kind, self._name)
            if self._halted:
                return
            # a fixed grid, so sleep overshoot does not accumulate; fallen behind (a probe longer than the
            # period), probe again at once and start a new grid there
            due += self.period
            now = self._clock()
            due = max(due, now)
            await self._sleep(due - now)


@dataclass(frozen=True)
class ProbeReport:
    """One declared probe of a container, for `describe`."""

    kind: Kind
    probe: Probe
    state: State
    last: ProbeResult | None


class ContainerProber:
    """Probes one container instance: startup gating, readiness changes and restart decisions."""

    def __init__(
        self,
        container: Container,
        *,
        host: str,
        exec_run: ExecRun | None = None,
        port_map: Mapping[int, int] | None = None,
        on_change: Callable[[bool, str], None] = lambda ready, reason: None,
        on_restart: Callable[[str], None] = lambda reason: None,
        on_failure: Callable[[str], None] = lambda reason: None,
        jitter: bool = True,
        rng: random.Random | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        calls: dict[Kind, ProbeCall] | None = None,
        name: str = "",
    ) -> None:
        self.container = container
        self.name = name or container.name
        self._host = host
        self._exec_run = exec_run
        self._port_map = dict(port_map or {})
        self._on_change = on_change
        self._on_restart = on_restart
        self._on_failure = on_failure
        self._jitter = jitter
        self._rng = rng or random.Random()
        self._clock = clock
        self._sleep = sleep
        self._calls = calls or {}
        declared: dict[Kind, Probe | None] = {
            "startup": container.startup_probe,
            "liveness": container.liveness_probe,
            "readiness": container.readiness_probe,
        }
        self._probes: dict[Kind, Probe] = {
            kind: probe for kind, probe in declared.items() if probe is not None
        }
        self._workers: dict[Kind, ProbeWorker] = {}
        self._running = False
        self._restarting = False
        self._started_at = 0.0
        self._ready = False
        self._reason = "container is not running"

    # --- the owner's verbs ---------------------------------------------------------------------------

    def start(self) -> None:
        """The container is running: probe it from scratch (fresh trackers)."""
        if self._running:
            return
        self._running, self._restarting, self._workers = True, False, {}
        self._started_at = self._clock()
        first: tuple[Kind, ...] = ("startup",) if "startup" in self._probes else ("liveness", "readiness")
        for kind in first:
            if kind in self._probes:
                self._spawn(kind, initial_delay=self._probes[kind].initial_delay_seconds, jitter=self._jitter)
        self._publish()

    async def stop(self, *, reason: str = "container is not running") -> None:
        """Stops probing; a ready container turns unready with `reason`."""
        self._running = False
        workers = list(self._workers.values())
        self._publish(reason)
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)

    # --- what the owner reads ------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def reason(self) -> str:
        return self._reason

    @property
    def health(self) -> ContainerHealth:
        def status(kind: Kind) -> ProbeStatus | None:
            if kind not in self._probes:
                return None
            worker = self._workers.get(kind)
            return worker.tracker.status() if worker else ProbeTracker(self._probes[kind], kind).status()

        return container_health(
            running=self._running,
            startup=status("startup"),
            liveness=status("liveness"),
            readiness=status("readiness"),
        )

    def reports(self) -> list[ProbeReport]:
        out = []
        for kind, probe in self._probes.items():
            worker = self._workers.get(kind)
            tracker = worker.tracker if worker else ProbeTracker(probe, kind)
            out.append(ProbeReport(kind, probe, tracker.state, tracker.last))
        return out

    # --- internals ------------------------------------------------------------------------------------

    def _spawn(self, kind: Kind, *, initial_delay: float, jitter: bool) -> None:
        probe = self._probes[kind]
        call = self._calls.get(kind) or probe_call(
            probe, container=self.container, host=self._host, exec_run=self._exec_run, port_map=self._port_map
        )
        worker = ProbeWorker(
            kind=kind,
            probe=probe,
            call=call,
            on_transition=self._on_transition,
            initial_delay=initial_delay,
            jitter=jitter,
            rng=self._rng,
            clock=self._clock,
            sleep=self._sleep,
            name=f"{self.name}/{kind}",
        )
        self._workers[kind] = worker
        worker.start()

    def _on_transition(self, kind: Kind, transition: Transition) -> None:
        if not self._running:
            return
        if kind == "startup" and transition.current == "success":
            self._workers["startup"].halt()  # a started container stays started
            for gated in ("liveness", "readiness"):
                if gated in self._probes:
                    # initialDelaySeconds counts from the container's start, as in the kubelet
                    not_before = self._started_at + self._probes[gated].initial_delay_seconds
                    self._spawn(gated, initial_delay=max(0.0, not_before - self._clock()), jitter=False)
        self._publish()

    def _publish(self, reason: str | None = None) -> None:
        """Calls on_change when `ready` changed, then on_restart once when a restart became due."""
        health = self.health
        before, self._reason = self._reason, reason if (reason is not None and not self._running) else health.reason
        if health.ready != self._ready:
            self._ready = health.ready
            READINESS_TRANSITIONS.labels("ready" if health.ready else "unready").inc()
            self._call_back(self._on_change, health.ready, self._reason)
        if self._reason != before and " probe failed" in self._reason:  # a new failure: the pod's Events
            self._call_back(self._on_failure, self._reason)
        if health.action == "restart" and not self._restarting:
            self._restarting = True
            for worker in self._workers.values():
                worker.halt()  # the kubelet's on-hold: no probing of a container about to be killed
            self._call_back(self._on_restart, health.reason)

    def _call_back(self, fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("probe callback %s for %s raised", getattr(fn, "__name__", fn), self.name)

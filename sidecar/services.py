"""What the sidecar knows: Services, their endpoints and per-endpoint proxy state, fed by discovery updates.

`ServiceTable.apply(update)` folds the Reset/Add/Remove/DoesNotExist stream into `ServiceState`s that the
proxy reads on every request. Objects stay stable across updates (a Reset updates a Service in place), so
listeners and in-flight requests keep their references. A removed endpoint gets no new requests; once its
in-flight count is 0 the table calls `on_drained(service_key, endpoint_name)` (the drain ack).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

from meshd.model.endpoints import Add, DoesNotExist, Endpoint, Remove, Reset, ServiceInfo, ServiceKey, Update

from .balancer import DEFAULT_RTT, Balancer, LeastRequest, Target, make_balancer
from .config import ServiceConfig, config_from_annotations
from .outlier import OutlierDetector, OutlierPolicy
from .retry import RetryBudget
from .topology import balanced

log = logging.getLogger(__name__)

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT", "OTHER")
METHOD_INDEX = {m.encode(): i for i, m in enumerate(METHODS)}
OTHER_METHOD = len(METHODS) - 1
CODE_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
OUTCOMES = ("success", "http_5xx", "connect_error", "connection_error", "timeout")
(OUT_SUCCESS, OUT_5XX, OUT_CONNECT, OUT_CONNECTION, OUT_TIMEOUT) = range(len(OUTCOMES))
# latency histogram bounds (seconds)
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BUCKET_0, BUCKET_1, BUCKET_2, BUCKET_3 = BUCKETS[:4]


class ServiceStats:
    """Plain-integer counters for one Service, read by the metrics collector at scrape time."""

    __slots__ = ("buckets", "duration_sum", "ejections", "in_flight", "requests", "retries")

    def __init__(self) -> None:
        self.requests = [[0] * len(CODE_CLASSES) for _ in METHODS]  # [method][code class]
        self.buckets = [0] * (len(BUCKETS) + 1)  # non-cumulative; last = +Inf
        self.duration_sum = 0.0
        self.retries = 0
        self.ejections = 0
        self.in_flight = 0

    def observe(self, method: int, status: int, seconds: float) -> None:
        """One request answered (`status`) in `seconds`: the only place a request is counted and timed."""
        cls = status // 100 - 1
        self.requests[method][cls if 0 <= cls < 5 else 4] += 1
        self.duration_sum += seconds
        if seconds <= BUCKET_1:  # bisect_left(BUCKETS, seconds), its common cases first
            self.buckets[0 if seconds <= BUCKET_0 else 1] += 1
        elif seconds <= BUCKET_3:
            self.buckets[2 if seconds <= BUCKET_2 else 3] += 1
        else:
            self.buckets[bisect_left(BUCKETS, seconds)] += 1


class L4Stats:
    """Plain-integer counters of a Service's opaque TCP connections and UDP flows (sidecar/tcp.py, udp.py)."""

    __slots__ = (
        "tcp_active", "tcp_bytes_in", "tcp_bytes_out", "tcp_opened",
        "udp_bytes_in", "udp_bytes_out", "udp_datagrams_in", "udp_datagrams_out", "udp_flows", "udp_opened",
    )  # fmt: skip

    def __init__(self) -> None:
        self.tcp_opened = self.tcp_active = self.tcp_bytes_in = self.tcp_bytes_out = 0  # in: from clients
        self.udp_opened = self.udp_flows = 0
        self.udp_datagrams_in = self.udp_datagrams_out = self.udp_bytes_in = self.udp_bytes_out = 0


class EndpointState(Target):
    """One endpoint of a Service as the proxy uses it: address, ports, readiness, idle upstream connections."""

    __slots__ = ("address", "failing", "gateway", "idle", "name", "node", "outcomes", "ports", "ready", "removed",
                 "service")

    def __init__(self, endpoint: Endpoint, service: ServiceState, *, now: float) -> None:
        super().__init__(now=now, rtt=DEFAULT_RTT)
        self.service = service
        self.removed = False
        self.idle: dict[int, list[Any]] = {}  # upstream port -> idle connections (proxy.UpstreamConnection)
        self.outcomes = [0] * len(OUTCOMES)
        self.failing = False  # the last outcome was a failure (the outlier detector holds a count)
        self.update(endpoint)

    def update(self, endpoint: Endpoint) -> None:
        self.name = endpoint.name
        self.address = endpoint.address
        self.ports = dict(endpoint.ports)
        self.ready = endpoint.ready
        self.node = endpoint.node
        if getattr(self, "gateway", endpoint.gateway) != endpoint.gateway:
            self.close_idle()  # pooled connections went through the old gateway
        self.gateway = endpoint.gateway  # "": on this node; else another node's mesh gateway (sidecar/mesh)

    def close_idle(self) -> None:
        for conns in self.idle.values():
            for conn in list(conns):
                conn.close()
        self.idle.clear()


class ServiceState:
    """A Service's definition, settings, endpoints and balancing state."""

    def __init__(self, key: ServiceKey, table: ServiceTable) -> None:
        self.key = key
        self.label = str(key)
        self.table = table
        self.clock = table.clock  # the one clock of everything timed for this Service (requests included)
        self.info: ServiceInfo | None = None
        self.default_port_name: str | None = None  # the first port's name: what a route without one uses
        self.exists = False
        self.config = ServiceConfig()
        self.balancer = make_balancer(self.config.algorithm, rng=table.rng, clock=table.clock)
        # per-connection codecs (opaque TCP, UDP flows) balance connections: least connections by P2C
        self.conn_balancer = LeastRequest(rng=table.rng)
        self.l4 = L4Stats()
        self.uses_rtt = False  # only peak-EWMA needs response times per endpoint
        self.endpoints: dict[str, EndpointState] = {}
        self.draining: dict[str, EndpointState] = {}
        self.available: list[EndpointState] = []  # ready, not removed, not ejected (local first: topology.py)
        self.ready_count = 0
        self.outlier = OutlierDetector(table.outlier_policy)
        self.budget = RetryBudget()
        self.stats = ServiceStats()
        self.waiters: list[Callable[[], None]] = []
        self._eject_expiry: float | None = None

    def unavailable_reason(self) -> str:
        """Why nothing can be picked now: what a fail-fast reply (503, gRPC UNAVAILABLE) tells the client."""
        if not self.exists:
            return f"no ready endpoints for {self.label}: the Service does not exist (yet)"
        if self.ready_count and not self.available:
            return f"no ready endpoints for {self.label}: all {self.ready_count} ready endpoints are ejected"
        return f"no ready endpoints for {self.label}"

    def wait_for_endpoint(
        self,
        on_ready: Callable[[], None],
        on_timeout: Callable[[str], None],
        *,
        loop: asyncio.AbstractEventLoop,
        delay: float,
    ) -> asyncio.TimerHandle:
        """Fail fast: call `on_ready()` once an endpoint is available, or `on_timeout(unavailable_reason())`
        after `delay` seconds, whichever comes first. Cancelling the returned handle calls neither."""

        def ready() -> None:
            if not timer.cancelled():
                timer.cancel()
                on_ready()

        def expired() -> None:
            if ready in self.waiters:
                self.waiters.remove(ready)
            on_timeout(self.unavailable_reason())

        timer = loop.call_later(delay, expired)
        self.waiters.append(ready)
        return timer

    # --- discovery -------------------------------------------------------------------------------------
    def reset(self, info: ServiceInfo, endpoints: Iterable[Endpoint]) -> None:
        if self.info is None or self.info.annotations != info.annotations:
            config = config_from_annotations(info.annotations)
            for problem in config.problems:
                log.warning("service %s: %s", self.key, problem)
            if config.algorithm != self.config.algorithm:
                self.balancer = make_balancer(config.algorithm, rng=self.table.rng, clock=self.table.clock)
            self.uses_rtt = config.algorithm == "ewma"
            self.config = config
        self.info = info
        self.default_port_name = info.ports[0].name if info.ports else None
        self.exists = True
        endpoints = list(endpoints)
        names = {e.name for e in endpoints}
        self._remove([n for n in self.endpoints if n not in names])
        self._add(endpoints)

    def add(self, endpoints: Iterable[Endpoint]) -> None:
        self._add(list(endpoints))

    def remove(self, names: Iterable[str]) -> None:
        self._remove(list(names))
        self.rebuild()

    def delete(self) -> None:
        self.exists = False
        self._remove(list(self.endpoints))
        self.rebuild()

    def _add(self, endpoints: list[Endpoint]) -> None:
        now = self.table.clock()
        for e in endpoints:
            state = self.endpoints.get(e.name)
            if state is None:
                state = self.draining.pop(e.name, None)  # came back before it drained
                if state is not None:
                    state.removed = False
                else:
                    state = EndpointState(e, self, now=now)
                self.endpoints[e.name] = state
            if state.address != e.address or state.ports != dict(e.ports):
                state.close_idle()
            if e.ready and not state.ready:
                self.outlier.uneject(e.name)  # its probe passed again (a restarted container): not ejected
            state.update(e)
        self.rebuild()

    def _remove(self, names: list[str]) -> None:
        for name in names:
            state = self.endpoints.pop(name, None)
            if state is None:
                continue
            state.removed = True
            state.close_idle()
            self.outlier.forget(name)
            if state.in_flight:
                self.draining[name] = state
            else:
                self.table.on_drained(self.key, name)

    def rebuild(self) -> None:
        """Recompute the balanced set; wake requests waiting for an endpoint."""
        now = self.table.clock()
        ready = [e for e in self.endpoints.values() if e.ready]
        self.ready_count = len(ready)
        self.available = balanced([e for e in ready if not self.outlier.is_ejected(e.name, now)],
                                  distribution=self.info.traffic_distribution if self.info else None,
                                  node=self.table.node)
        self._eject_expiry = self.outlier.next_expiry(now)
        if self.available and self.waiters:
            waiters, self.waiters = self.waiters, []
            for wake in waiters:
                wake()

    # --- the request path ------------------------------------------------------------------------------
    def pick(
        self, exclude: set[EndpointState] | None, balancer: Balancer | None = None
    ) -> EndpointState | None:
        """An endpoint for a request (the Service's balancer) or a connection (`balancer`, e.g. its
        `conn_balancer`), None if none is available; one in `exclude` only when nothing else is left."""
        if self._eject_expiry is not None and self.table.clock() >= self._eject_expiry:
            self.rebuild()
        available = self.available
        n = len(available)
        if n <= 1:
            return available[0] if n else None
        return (balancer or self.balancer).pick(available, exclude or ())  # type: ignore[return-value]

    def release(self, ep: EndpointState) -> None:
        """An attempt on `ep` ended (whatever the outcome)."""
        ep.in_flight -= 1
        if ep.in_flight == 0 and ep.removed:
            self.drained(ep)

    def drained(self, ep: EndpointState) -> None:
        """`ep` (removed from the stream) has nothing in flight any more: acknowledge."""
        self.draining.pop(ep.name, None)
        self.table.on_drained(self.key, ep.name)

    def record(self, ep: EndpointState, outcome: int) -> None:
        ep.outcomes[outcome] += 1
        if outcome == OUT_SUCCESS:
            if ep.failing:
                ep.failing = False
                self.outlier.record(ep.name, True, 0.0, total=0)
            return
        ep.failing = True
        if self.outlier.record(ep.name, False, self.table.clock(), total=self.ready_count):
            self.stats.ejections += 1
            log.warning("service %s: ejected endpoint %s after consecutive failures", self.key, ep.name)
            self.rebuild()

    def target_port(self, ep: EndpointState, port_name: str | None) -> int | None:
        ports = ep.ports
        if port_name is not None:
            port = ports.get(port_name)
            if port is not None:
                return port
        if self.info is not None:
            for p in self.info.ports:
                if port_name is None or p.name == port_name:
                    if p.name in ports:
                        return ports[p.name]
                    if isinstance(p.target_port, int):
                        return p.target_port
                    break
        if len(ports) == 1:
            return next(iter(ports.values()))
        return None


class ServiceTable:
    """All Services the sidecar knows, folded from the update stream."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        outlier_policy: OutlierPolicy | None = None,
        on_drained: Callable[[ServiceKey, str], None] | None = None,
        only: ServiceKey | None = None,
        node: str = "",
    ) -> None:
        """`node`: the node this sidecar runs on (what PreferClose prefers; "" unknown)."""
        self.clock = clock
        self.node = node
        self.rng = rng or random.Random()
        self.outlier_policy = outlier_policy or OutlierPolicy()
        self.services: dict[ServiceKey, ServiceState] = {}
        self._on_drained = on_drained
        self.only = only
        self.listeners: list[Callable[[], None]] = []  # called after each change to the set of Services

    def on_drained(self, key: ServiceKey, name: str) -> None:
        if self._on_drained is not None:
            self._on_drained(key, name)

    def get(self, key: ServiceKey) -> ServiceState:
        """The state for `key`, created empty (not existing, no endpoints) if unknown."""
        state = self.services.get(key)
        if state is None:
            state = self.services[key] = ServiceState(key, self)
        return state

    def apply(self, update: Update) -> None:
        key = update.service.key if isinstance(update, Reset) else update.service
        if self.only is not None and key != self.only:
            return
        changed = False
        match update:
            case Reset(info, endpoints):
                state = self.get(key)
                changed = not state.exists or state.info != info
                state.reset(info, endpoints)
            case Add(_, endpoints):
                state = self.get(key)
                state.add(endpoints)
            case Remove(_, names):
                if key in self.services:
                    self.services[key].remove(names)
            case DoesNotExist(_):
                if key in self.services and self.services[key].exists:
                    self.services[key].delete()
                    changed = True
        if changed:
            self._notify()

    def retain(self, keys: set[ServiceKey]) -> None:
        """After a Synced: Services not in the fresh snapshot are gone."""
        gone = [k for k, s in self.services.items() if s.exists and k not in keys]
        for key in gone:
            self.services[key].delete()
        if gone:
            self._notify()

    def _notify(self) -> None:
        for listener in list(self.listeners):
            try:
                listener()
            except Exception:
                log.exception("service table listener failed")

"""Drain acknowledgements: before a pod is stopped, wait until every connected sidecar that routes to it says
it holds no in-flight request to it any more (the channel beside the endpoint stream).

Bounded: an ack is kept only from a connected sidecar, for an endpoint that is draining (it left the
registry and its pod has not finished stopping); at most `max_draining` pods are remembered as draining (the
oldest is forgotten first); what a sidecar acked goes when it disconnects, what a pod was acked for goes when
its stop has waited or its endpoint comes back."""

from __future__ import annotations

import asyncio
from collections import OrderedDict, defaultdict

from meshd.model.endpoints import Add, DoesNotExist, Remove, Reset, ServiceKey, Update
from meshd.registry.registry import Registry

MAX_DRAINING = 10_000

PodKey = tuple[str, str]  # (namespace, pod)


class DrainCoordinator:
    def __init__(self, registry: Registry, *, max_draining: int = MAX_DRAINING) -> None:
        self._subscribers: dict[str, set[ServiceKey] | None] = {}  # sidecar id -> Services it follows (None: all)
        self._connections: dict[str, int] = defaultdict(int)
        self._removed: OrderedDict[PodKey, set[ServiceKey]] = OrderedDict()  # draining pod -> Services it left
        self._acks: dict[PodKey, set[tuple[str, ServiceKey]]] = {}  # draining pod -> (sidecar, Service) acked
        self._max = max_draining
        self._changed = asyncio.Condition()
        self._notifying: set[asyncio.Task] = set()
        registry.listen(self._on_update)

    def _on_update(self, update: Update) -> None:
        if isinstance(update, Remove):
            for name in update.names:
                key = (update.service.namespace, name)
                self._removed.setdefault(key, set()).add(update.service)
                self._removed.move_to_end(key)
            while len(self._removed) > self._max:
                forgotten, _ = self._removed.popitem(last=False)
                self._acks.pop(forgotten, None)
        elif isinstance(update, Add | Reset):  # an endpoint that is back is not draining any more
            service = update.service if isinstance(update, Add) else update.service.key
            for endpoint in update.endpoints:
                self._stop_draining((service.namespace, endpoint.name), service)
        elif isinstance(update, DoesNotExist):  # no sidecar routes to a Service that is gone
            for key in [k for k, services in self._removed.items() if update.service in services]:
                self._stop_draining(key, update.service)
            self._wake()

    def _stop_draining(self, key: PodKey, service: ServiceKey) -> None:
        services = self._removed.get(key)
        if services is None:
            return
        services.discard(service)
        acks = self._acks.get(key)
        if acks:
            acks.difference_update({a for a in acks if a[1] == service})
        if not services:
            del self._removed[key]
            self._acks.pop(key, None)

    def connect(self, sidecar: str, service: ServiceKey | None) -> None:
        self._connections[sidecar] += 1
        if service is None or sidecar not in self._subscribers:
            self._subscribers[sidecar] = None if service is None else {service}
        elif self._subscribers[sidecar] is not None:
            self._subscribers[sidecar].add(service)  # type: ignore[union-attr]

    def disconnect(self, sidecar: str) -> None:
        self._connections[sidecar] -= 1
        if self._connections[sidecar] <= 0:
            del self._connections[sidecar]
            self._subscribers.pop(sidecar, None)
            for acks in self._acks.values():
                acks.difference_update({a for a in acks if a[0] == sidecar})
            self._wake()

    @property
    def sidecars(self) -> list[str]:
        return sorted(self._subscribers)

    @property
    def draining(self) -> int:
        return len(self._removed)

    @property
    def acks(self) -> int:
        return sum(len(a) for a in self._acks.values())

    def acknowledge(self, sidecar: str, service: ServiceKey, endpoint: str) -> bool:
        """Records an ack; False (and nothing kept) unless the sidecar is connected, follows the Service, and
        the endpoint is draining from it."""
        key = (service.namespace, endpoint)
        follows = self._subscribers.get(sidecar, set())
        if sidecar not in self._subscribers or (follows is not None and service not in follows):
            return False
        if service not in self._removed.get(key, ()):
            return False
        self._acks.setdefault(key, set()).add((sidecar, service))
        self._wake()
        return True

    def _wake(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        task = asyncio.get_running_loop().create_task(notify())
        self._notifying.add(task)
        task.add_done_callback(self._notifying.discard)

    def _outstanding(self, namespace: str, pod: str) -> list[tuple[str, ServiceKey]]:
        services = self._removed.get((namespace, pod), set())
        acked = self._acks.get((namespace, pod), set())
        return [
            (sidecar, service)
            for sidecar, follows in self._subscribers.items()
            for service in services
            if (follows is None or service in follows) and (sidecar, service) not in acked
        ]

    async def wait(self, namespace: str, pod: str) -> None:
        """Returns once no connected sidecar holds a request to the pod (the caller bounds the wait)."""
        try:
            async with self._changed:
                await self._changed.wait_for(lambda: not self._outstanding(namespace, pod))
        finally:
            self._removed.pop((namespace, pod), None)
            self._acks.pop((namespace, pod), None)

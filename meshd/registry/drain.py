"""Drain acknowledgements: before a pod is stopped, wait until every connected sidecar that routes to it says
it holds no in-flight request to it any more (the channel beside the endpoint stream)."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from meshd.model.endpoints import Remove, ServiceKey, Update
from meshd.registry.registry import Registry
from meshd.tasks import BACKGROUND


class DrainCoordinator:
    def __init__(self, registry: Registry) -> None:
        self._subscribers: dict[str, set[ServiceKey] | None] = {}  # sidecar id -> Services it follows (None: all)
        self._connections: dict[str, int] = defaultdict(int)
        self._removed: dict[tuple[str, str], set[ServiceKey]] = defaultdict(set)  # pod -> Services it left
        self._acks: set[tuple[str, ServiceKey, str]] = set()
        self._changed = asyncio.Condition()
        registry.listen(self._on_update)

    def _on_update(self, update: Update) -> None:
        if isinstance(update, Remove):
            for name in update.names:
                self._removed[(update.service.namespace, name)].add(update.service)

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
            self._wake()

    @property
    def sidecars(self) -> list[str]:
        return sorted(self._subscribers)

    def acknowledge(self, sidecar: str, service: ServiceKey, endpoint: str) -> None:
        self._acks.add((sidecar, service, endpoint))
        self._wake()

    def _wake(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        BACKGROUND.spawn(notify(), name="drain notify")

    def _outstanding(self, namespace: str, pod: str) -> list[tuple[str, ServiceKey]]:
        services = self._removed.get((namespace, pod), set())
        return [
            (sidecar, service)
            for sidecar, follows in self._subscribers.items()
            for service in services
            if (follows is None or service in follows) and (sidecar, service, pod) not in self._acks
        ]

    async def wait(self, namespace: str, pod: str) -> None:
        """Returns once no connected sidecar holds a request to the pod (the caller bounds the wait)."""
        try:
            async with self._changed:
                await self._changed.wait_for(lambda: not self._outstanding(namespace, pod))
        finally:
            services = self._removed.pop((namespace, pod), set())
            self._acks = {a for a in self._acks if not (a[2] == pod and a[1] in services)}

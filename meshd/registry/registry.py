"""The endpoint registry: Services, the pods behind them, readiness, and the stream of changes.

In-process consumers (DNS, mDNS) `listen()` with a plain callback; remote ones (sidecars, `get -w`) go through
`watch()`, an async iterator that starts with the current state (Reset, or DoesNotExist) and follows every change.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from meshd.model.endpoints import (
    Add,
    DoesNotExist,
    Endpoint,
    Remove,
    Reset,
    ServiceInfo,
    ServiceKey,
    Update,
)
from meshd.registry.endpoints import PodRecord, ServiceRecord, endpoint_for, endpoints_for
from meshd.tasks import done_within

Listener = Callable[[Update], None]


@dataclass(frozen=True)
class Synced:
    """Marks the end of the initial snapshot in a watch of every Service."""


class Registry:
    def __init__(self, *, node: str = "") -> None:
        self.node = node
        self.index = 0
        self._services: dict[ServiceKey, ServiceRecord] = {}
        self._pods: dict[tuple[str, str], PodRecord] = {}
        self._endpoints: dict[ServiceKey, dict[str, Endpoint]] = {}
        self._listeners: list[Listener] = []
        self._pod_listeners: list[Callable[[], None]] = []

    # --- reading --------------------------------------------------------------------------------------

    def services(self, *, host_ports: bool = False) -> list[ServiceInfo]:
        """The Services (with `host_ports`, also the pods' hostPort records, which only sidecars serve)."""
        return [record.info for _, record in sorted(self._services.items()) if host_ports or record.pod is None]

    def service(self, key: ServiceKey) -> ServiceInfo | None:
        record = self._services.get(key)
        return record.info if record else None

    def endpoints(self, key: ServiceKey) -> tuple[Endpoint, ...]:
        return tuple(ep for _, ep in sorted(self._endpoints.get(key, {}).items()))

    def ready_endpoints(self, key: ServiceKey) -> tuple[Endpoint, ...]:
        return tuple(ep for ep in self.endpoints(key) if ep.ready)

    def pod_addresses(self) -> list[tuple[str, str]]:
        """(namespace, address) of every pod with an address that is not terminating (DNS's pod records)."""
        return sorted({(p.namespace, p.address) for p in self._pods.values() if p.address and not p.terminating})

    def pod(self, namespace: str, name: str) -> PodRecord | None:
        return self._pods.get((namespace, name))

    def services_of_pod(self, namespace: str, name: str) -> list[ServiceKey]:
        return [key for key, eps in self._endpoints.items() if key.namespace == namespace and name in eps]

    def snapshot(self, key: ServiceKey) -> Reset | DoesNotExist:
        record = self._services.get(key)
        if record is None:
            return DoesNotExist(key)
        return Reset(record.info, self.endpoints(key))

    # --- writing --------------------------------------------------------------------------------------

    def upsert_service(self, info: ServiceInfo, selector: dict[str, str] | None = None, *,
                       pod: str | None = None) -> None:
        """A Service (its endpoints: the pods its selector matches), or with `pod`, that pod's hostPorts."""
        record = ServiceRecord(info, dict(selector or {}), pod)
        if self._services.get(info.key) == record:
            return
        self._services[info.key] = record
        self._endpoints[info.key] = endpoints_for(record, self._pods.values(), node=self.node)
        self._publish(Reset(info, self.endpoints(info.key)))

    def delete_service(self, key: ServiceKey) -> None:
        if self._services.pop(key, None) is None:
            return
        self._endpoints.pop(key, None)
        self._publish(DoesNotExist(key))

    def upsert_pod(self, pod: PodRecord) -> None:
        old = self._pods.get((pod.namespace, pod.name))
        if old == pod:
            return
        self._pods[(pod.namespace, pod.name)] = pod
        self._refresh_pod(pod.namespace, pod.name)
        if old is None or (old.address, old.terminating) != (pod.address, pod.terminating):
            self._pods_moved()

    def delete_pod(self, namespace: str, name: str) -> None:
        if self._pods.pop((namespace, name), None) is not None:
            self._refresh_pod(namespace, name)
            self._pods_moved()

    def listen_pods(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Calls `listener` whenever a pod's address comes or goes (see pod_addresses)."""
        self._pod_listeners.append(listener)
        return lambda: self._pod_listeners.remove(listener) if listener in self._pod_listeners else None

    def _pods_moved(self) -> None:
        for listener in list(self._pod_listeners):
            listener()

    def _refresh_pod(self, namespace: str, name: str) -> None:
        """Publishes how one pod's change moves the endpoints of each Service in its namespace."""
        pod = self._pods.get((namespace, name))
        for key, record in self._services.items():
            if key.namespace != namespace:
                continue
            endpoints = self._endpoints.setdefault(key, {})
            old = endpoints.get(name)
            new = endpoint_for(record, pod, node=self.node) if pod is not None else None
            if new == old:
                continue
            if new is None:
                del endpoints[name]
                self._publish(Remove(key, (name,)))
            else:
                endpoints[name] = new
                self._publish(Add(key, (new,)))

    # --- following ------------------------------------------------------------------------------------

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Calls `listener` with every update from now on; returns the function that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    async def watch(self, key: ServiceKey | None = None) -> AsyncIterator[Update | Synced]:
        """The current state, then every change: of one Service, or (key None) of all, with Synced between."""
        queue: asyncio.Queue[Update] = asyncio.Queue()

        def enqueue(update: Update) -> None:
            if key is None or _key_of(update) == key:
                queue.put_nowait(update)

        stop = self.listen(enqueue)
        try:
            if key is None:
                for info in self.services(host_ports=True):
                    yield Reset(info, self.endpoints(info.key))
                yield Synced()
            else:
                yield self.snapshot(key)
            while True:
                yield await queue.get()
        finally:
            stop()

    async def wait_for_index(self, index: int, *, timeout: float) -> int:
        """Blocks until the registry's index passes `index` or the timeout ends (Consul's blocking query)."""
        if self.index > index:
            return self.index
        changed = asyncio.Event()
        stop = self.listen(lambda _update: changed.set())
        try:
            await done_within(changed.wait(), timeout)
        finally:
            stop()
        return self.index

    def _publish(self, update: Update) -> None:
        self.index += 1
        for listener in list(self._listeners):
            listener(update)


def _key_of(update: Update) -> ServiceKey:
    return update.service.key if isinstance(update, Reset) else update.service


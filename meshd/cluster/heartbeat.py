"""The node's registration and heartbeat, as a kubelet's: the `Node` object is created (or brought up to date)
in the shared store, and its `Lease` in kube-node-lease renewed every `interval` seconds. A failed write (the
store unreachable, a lost race) is logged once and tried again at the next beat; nothing that runs stops.

A Node deleted after this agent registered it (`kubectl delete node`) is not registered again, as a running
kubelet does not: the beat stops and `removed` says since when (the agent then stops; meshd.cluster.member)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from meshd.cluster.nodes import NODE_LEASE_NAMESPACE, lease, registration, renewed
from meshd.store import Create, ObjectStore, StoreError, Update

log = logging.getLogger(__name__)


class NodeHeartbeat:
    def __init__(self, store: ObjectStore, node: Callable[[], dict[str, Any]], *, interval: float,
                 grace: float, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._node = node  # the Node as this agent describes it now (capacity, addresses, nodeInfo)
        self.name = str(node()["metadata"]["name"])
        self.interval, self.grace = interval, grace
        self._clock = clock
        self.failing = ""  # why the last beat failed ("" when it worked)
        self.registered = ""  # the uid of the Node this agent registered (or found at start)
        self.removed: float | None = None  # when this agent saw its registered Node deleted

    async def run(self) -> None:
        while self.removed is None:
            await self.beat()
            await asyncio.sleep(self.interval)

    async def beat(self) -> None:
        if self.removed is not None:
            return
        if self.registered and self.store.get("Node", "", self.name) is None:
            self.removed = self._clock()
            log.error("node %s was deleted from the cluster (kubectl delete node %s): it is not registered again",
                      self.name, self.name)
            return
        try:
            await self._register()
            await self._renew()
        except StoreError as error:
            if not self.failing:
                log.warning("node %s: cannot renew its lease: %s (trying again every %gs)", self.name, error,
                            self.interval)
            self.failing = str(error)
            return
        if self.failing:
            log.info("node %s: renewing its lease again", self.name)
        self.failing = ""

    async def _register(self) -> None:
        current = self.store.get("Node", "", self.name)
        fresh = registration(current, self._node())
        if fresh is not None:
            written = await (self.store.create(fresh) if current is None else self.store.update(fresh))
            current = written
        if current is not None:
            self.registered = str(current["metadata"].get("uid") or "registered")

    async def _renew(self) -> None:
        previous = self.store.get("Lease", NODE_LEASE_NAMESPACE, self.name)
        duration = max(int(round(self.grace)), 1)
        fresh = renewed(previous, lease(NODE_LEASE_NAMESPACE, self.name, holder=self.name, duration=duration,
                                        renewed=self._clock()))
        await self.store.transaction([Update(fresh) if previous is not None else Create(fresh)])


__all__ = ["NodeHeartbeat"]

"""Leader election through an etcd lease, never a home-made consensus: an agent grants itself a lease of `ttl`
seconds and, in one transaction, creates the leader key bound to it only if the key is absent. The holder keeps
the lease alive every ttl/3 seconds; when it dies the lease expires and the key with it, and another agent's
transaction succeeds. A leader stops leading at once when etcd says its lease is gone, and on its own when it
could not renew for `renew_deadline` (< ttl) seconds, so two agents never lead at the same time by its clock.

While leading, the agent also keeps the `Lease` kube-system/meshd-controller up to date (what
kube-controller-manager's election shows) and `meshd_leader` is 1."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Gauge

from meshd.cluster.nodes import LEADER_LEASE_NAME, LEADER_LEASE_NAMESPACE, lease, renewed
from meshd.metrics import REGISTRY
from meshd.store import Create, ObjectStore, StoreError, Update
from meshd.store.etcdclient import Compacted, EtcdClient, EtcdUnavailable, KeyValue, b64

log = logging.getLogger(__name__)

LEADER_KEY = "/meshd/leader/controller"
LEADER = Gauge("meshd_leader", "1 while this agent is the leader (runs the controllers), else 0.",
               registry=REGISTRY)


class LeaderElection:
    def __init__(self, client: EtcdClient, identity: str, *, ttl: int = 5,
                 on_start: Callable[[], Any] = lambda: None, on_stop: Callable[[], Any] = lambda: None,
                 store: ObjectStore | None = None, key: str = LEADER_KEY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if ttl < 2:
            raise ValueError("the leader lease TTL must be at least 2 seconds")
        self.client, self.identity, self.ttl, self.key = client, identity, ttl, key
        self.renew_deadline = ttl * 2 / 3
        self._on_start, self._on_stop = on_start, on_stop
        self._store = store
        self._clock = clock
        self.leading = False
        self.leader = ""  # who leads, as last seen ("" unknown)
        self._lease = 0
        self._acquired = 0.0
        LEADER.set(0)

    async def run(self) -> None:
        try:
            while True:
                try:
                    revision = await self._try_acquire()
                    if revision is None:
                        await self._lead()
                    else:
                        await self._wait_for_vacancy(revision)
                except EtcdUnavailable as error:
                    log.debug("leader election: %s", error)
                    await asyncio.sleep(min(1.0, self.ttl / 3))
        finally:
            self._stop_leading("the agent stops")
            if self._lease:
                lease_id, self._lease = self._lease, 0
                try:  # hand over at once rather than after the TTL
                    await asyncio.shield(asyncio.wait_for(self.client.revoke(lease_id), 2))
                except (EtcdUnavailable, asyncio.TimeoutError, asyncio.CancelledError):
                    pass

    async def _try_acquire(self) -> int | None:
        """None when this agent now leads, else the revision at which another one held the key."""
        kvs, revision = await self.client.range(self.key)
        if kvs:
            self.leader = kvs[0].value.decode(errors="replace")
            return revision
        lease_id = await self.client.grant(self.ttl)
        granted = self._clock()
        key = b64(self.key)
        won, revision, responses = await self.client.txn(
            [{"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
            [{"request_put": {"key": key, "value": b64(self.identity), "lease": str(lease_id)}}],
            [{"request_range": {"key": key}}])
        if not won:
            await self.client.revoke(lease_id)
            found: list[dict[str, Any]] = ((responses[0].get("response_range") or {}).get("kvs") or []
                                           ) if responses else []
            self.leader = KeyValue.parse(found[0]).value.decode(errors="replace") if found else ""
            return revision
        self._lease, self._acquired = lease_id, granted
        return None

    async def _wait_for_vacancy(self, revision: int) -> None:
        """Until the leader key goes (its holder's lease expired or was revoked), watched from `revision`, or
        at most a TTL (then the key is read again)."""
        try:
            async with asyncio.timeout(self.ttl):
                async with contextlib.aclosing(self.client.watch(self.key, revision + 1)) as changes:
                    async for batch in changes:
                        if any(change.deleted and change.kv.key == self.key for change in batch):
                            return
        except (TimeoutError, Compacted):
            return
        except EtcdUnavailable:
            await asyncio.sleep(min(1.0, self.ttl / 3))

    async def _lead(self) -> None:
        self.leader, self.leading = self.identity, True
        LEADER.set(1)
        log.info("leading: %s holds %s (etcd lease %x, TTL %ds)", self.identity, self.key, self._lease, self.ttl)
        self._on_start()
        renewed_at = self._acquired
        # the Lease object is written aside: a write slowed by the store (an etcd member lost, its raft electing a
        # new leader) must not hold back the renewals, or this agent would lead past its lease, with another
        publisher = asyncio.create_task(self._publish_forever(), name="leader lease object")
        pause = self.ttl / 3
        try:
            while True:
                await asyncio.sleep(pause)
                pause = 0.2  # a failed renewal is tried again soon (another member may answer by then)
                try:
                    # asyncio.timeout, not wait_for: 3.11's wait_for returns the result when a cancellation
                    # races its completion, and this loop would then renew forever after the agent's stop
                    async with asyncio.timeout(max(self.renew_deadline - (self._clock() - renewed_at), 0.1)):
                        left = await self.client.keepalive(self._lease)
                except (EtcdUnavailable, asyncio.TimeoutError):
                    if self._clock() - renewed_at >= self.renew_deadline:
                        self._stop_leading(f"could not renew the lease for {self.renew_deadline:.1f}s")
                        return
                    continue
                if left <= 0:
                    self._stop_leading("etcd says the lease expired")
                    return
                renewed_at, pause = self._clock(), self.ttl / 3
        finally:
            publisher.cancel()
            await asyncio.gather(publisher, return_exceptions=True)
            if not self.leading:
                self._lease = 0

    async def _publish_forever(self) -> None:
        while True:
            await self._publish()
            await asyncio.sleep(self.ttl / 3)

    def _stop_leading(self, why: str) -> None:
        if self.leading:
            self.leading = False
            self.leader = ""
            LEADER.set(0)
            log.warning("no longer leading: %s", why)
            self._on_stop()

    async def _publish(self) -> None:
        """The Lease kube-system/meshd-controller, as kube-controller-manager keeps its own."""
        if self._store is None:
            return
        previous = self._store.get("Lease", LEADER_LEASE_NAMESPACE, LEADER_LEASE_NAME)
        fresh = renewed(previous, lease(LEADER_LEASE_NAMESPACE, LEADER_LEASE_NAME, holder=self.identity,
                                        duration=self.ttl, renewed=time.time()))
        try:
            await self._store.transaction([Update(fresh) if previous is not None else Create(fresh)])
        except StoreError as error:
            log.debug("leader lease object: %s", error)


__all__ = ["LEADER", "LEADER_KEY", "LeaderElection"]

"""Leader election on a real etcd: one of three candidates leads; when it stops (its lease revoked) or dies (its
lease left to expire) another takes over; a leader whose lease etcd revoked stops leading at once; the Lease
object kube-system/meshd-controller names the holder."""

from __future__ import annotations

import asyncio


from meshd.cluster.leader import LeaderElection
from meshd.store.etcd import open_etcd_store
from meshd.store.etcdclient import EtcdClient
from tests.integration.agent_harness import eventually
from tests.integration.etcd_harness import EtcdCluster


class Candidate:
    def __init__(self, etcd: EtcdCluster, name: str, store: object = None) -> None:
        self.client = EtcdClient(etcd.endpoints, timeout=1.0)
        self.events: list[str] = []
        self.election = LeaderElection(self.client, name, ttl=2, store=store,  # type: ignore[arg-type]
                                       on_start=lambda: self.events.append("start"),
                                       on_stop=lambda: self.events.append("stop"))
        self.task = asyncio.create_task(self.election.run(), name=f"candidate {name}")

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.client.close()

    def die(self) -> None:
        """As a killed process: nothing revokes the lease, etcd lets it expire."""
        self.election._lease = 0
        self.task.cancel()


async def test_one_leads_and_another_takes_over_when_it_stops_or_dies(etcd: EtcdCluster) -> None:
    store = await open_etcd_store(etcd.endpoints)
    candidates = [Candidate(etcd, f"c{i}", store if i == 0 else None) for i in range(3)]
    try:
        leading = await eventually(lambda: [c for c in candidates if c.election.leading], timeout=30)
        assert len(leading) == 1
        first = leading[0]
        await eventually(lambda: all(c.election.leader == first.election.identity for c in candidates), timeout=30)
        if first is candidates[0]:
            lease = await eventually(lambda: store.get("Lease", "kube-system", "meshd-controller"), timeout=30)
            assert lease["spec"]["holderIdentity"] == "c0" and lease["spec"]["leaseDurationSeconds"] == 2
        await first.stop()  # a clean stop revokes the lease: another leads at once
        assert first.events == ["start", "stop"]
        rest = [c for c in candidates if c is not first]
        second = (await eventually(lambda: [c for c in rest if c.election.leading], timeout=30))[0]
        assert sum(c.election.leading for c in rest) == 1
        second.die()  # no revoke: the lease expires after its TTL and the last candidate takes over
        await asyncio.gather(second.task, return_exceptions=True)
        last = next(c for c in rest if c is not second)
        await eventually(lambda: last.election.leading, timeout=30)
        await second.client.close()
        # etcd revokes the leader's lease (as when it expired while the leader was partitioned): it stops at once
        await last.client.revoke(last.election._lease)
        await eventually(lambda: last.events.count("start") == 2 and last.election.leading, timeout=30)
        assert last.events == ["start", "stop", "start"]  # it stopped, then competed again, alone
    finally:
        for candidate in candidates:
            if not candidate.task.done():
                await candidate.stop()
        await store.close()

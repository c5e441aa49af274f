"""The shared store against the single-node one, side by side in one run, on a real etcd (Debian's etcd-server,
one member started here on free ports): the latency of one write (a Service created through ObjectStore, one
at a time) on SQLite and on etcd; how long another agent's store takes to see a write (etcd watch); and how long
leadership takes to move when the leader dies without a word (its etcd lease expires) or stops cleanly (it
revokes its lease).

    python bench/cluster_bench.py [--writes 300] [--ttl 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentile
from meshd.cluster.leader import LeaderElection
from meshd.store.etcd import open_etcd_store
from meshd.store.etcdclient import EtcdClient
from meshd.store.objects import ObjectStore
from meshd.store.sqlite import open_sqlite_store
from tests.integration.etcd_harness import EtcdCluster


def service(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"port": 80}]}}


async def write_latencies(store: ObjectStore, count: int, prefix: str) -> list[float]:
    latencies = []
    for i in range(count):
        start = time.perf_counter()
        await store.create(service(f"{prefix}-{i}"))
        latencies.append(time.perf_counter() - start)
    return latencies


async def seen_by_other(endpoints: list[str], count: int) -> list[float]:
    a, b = await open_etcd_store(endpoints), await open_etcd_store(endpoints)
    delays = []
    try:
        watch = b.watch("Service", "default", from_resource_version=b.resource_version)
        for i in range(count):
            start = time.perf_counter()
            await a.create(service(f"seen-{i}"))
            while True:
                event = await anext(watch)
                if event.object["metadata"]["name"] == f"seen-{i}":
                    break
            delays.append(time.perf_counter() - start)
        await watch.aclose()
    finally:
        await a.close()
        await b.close()
    return delays


async def failover(endpoints: list[str], ttl: int, *, clean: bool) -> float:
    clients = [EtcdClient(endpoints, timeout=1.0) for _ in range(2)]
    elections = [LeaderElection(c, f"bench-{i}", ttl=ttl, key="/meshd/bench/leader") for i, c in enumerate(clients)]
    tasks = [asyncio.create_task(e.run()) for e in elections]
    try:
        while not any(e.leading for e in elections):
            await asyncio.sleep(0.01)
        leader = next(i for i, e in enumerate(elections) if e.leading)
        if not clean:
            elections[leader]._lease = 0  # as a killed process: nothing revokes the lease
        start = time.perf_counter()
        tasks[leader].cancel()
        await asyncio.gather(tasks[leader], return_exceptions=True)
        while not elections[1 - leader].leading:
            await asyncio.sleep(0.01)
        return time.perf_counter() - start
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in clients:
            await client.close()


def row(name: str, values: list[float]) -> str:
    return (f"{name:<44} {statistics.median(values) * 1000:9.2f} {percentile(values, 0.95) * 1000:9.2f} "
            f"{max(values) * 1000:9.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--ttl", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="meshd-cluster-bench-"))
    etcd = await asyncio.to_thread(lambda: EtcdCluster(work / "etcd").start())
    try:
        sqlite = await open_sqlite_store(work / "state")
        local = await write_latencies(sqlite, args.writes, "svc")
        await sqlite.close()
        shared_store = await open_etcd_store(etcd.endpoints)
        shared = await write_latencies(shared_store, args.writes, "svc")
        await shared_store.close()
        seen = await seen_by_other(etcd.endpoints, min(args.writes, 100))
        died = [await failover(etcd.endpoints, args.ttl, clean=False) for _ in range(args.rounds)]
        stopped = [await failover(etcd.endpoints, args.ttl, clean=True) for _ in range(args.rounds)]
    finally:
        await asyncio.to_thread(etcd.stop)
    print(f"{'':<44} {'median ms':>9} {'p95 ms':>9} {'max ms':>9}")
    print(row(f"one write, SQLite ({args.writes})", local))
    print(row(f"one write, etcd ({args.writes})", shared))
    print(row("a write seen by another agent's store (etcd)", seen))
    print(row(f"leader killed -> another leads (TTL {args.ttl}s)", died))
    print(row("leader stops cleanly -> another leads", stopped))
    print(f"etcd/SQLite write latency: {statistics.median(shared) / statistics.median(local):.1f}x")


if __name__ == "__main__":
    asyncio.run(main())

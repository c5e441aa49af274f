"""Binding pods in a cluster, on a real etcd (Debian's etcd-server, one member started here on free ports): the
leader's path from "a controller wants N pods" to N `v1 Pod` objects bound to nodes in etcd (the scheduler's
decision for each, over every pod placed so far, and one etcd write each), against the scheduler alone. Three
Ready nodes; how evenly the pods land is printed too.

    python bench/binding_bench.py [--pods 1000] [--nodes 3]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from meshd.cluster.nodes import NODE_LEASE_NAMESPACE, lease
from meshd.cluster.pods import ClusterPods
from meshd.controller.events import EventLog
from meshd.controller.pod import PodIdentity
from meshd.manifests import load_objects
from meshd.scheduler import NodeInfo, PodInfo, schedule
from meshd.store.etcd import open_etcd_store
from tests.integration.etcd_harness import EtcdCluster

SPEC = load_objects([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": [
    {"name": "main", "image": "busybox", "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}],
    source="bench").objects[0].spec


def scheduler_alone(pods: int, nodes: int) -> float:
    infos = [NodeInfo(f"n{i}", cpu_millicores=64000, memory_bytes=1 << 40, pods=10000) for i in range(nodes)]
    placed: list[PodInfo] = []
    start = time.perf_counter()
    for i in range(pods):
        pod = PodInfo("default", f"p{i}", {"app": "b"}, SPEC)
        placed.append(PodInfo("default", pod.name, pod.labels, SPEC, schedule(pod, infos, placed).node or ""))
    return time.perf_counter() - start


async def through_etcd(endpoints: list[str], pods: int, nodes: int) -> tuple[float, float, collections.Counter]:
    store = await open_etcd_store(endpoints)
    try:
        for i in range(nodes):
            await store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"n{i}"},
                                "status": {"allocatable": {"cpu": "64", "memory": "1Ti", "pods": "10000"}}})
            await store.create(lease(NODE_LEASE_NAMESPACE, f"n{i}", holder=f"n{i}", duration=60, renewed=time.time()))
        controller = SimpleNamespace(events=EventLog(), replicasets={}, objects={}, leading=True, kick=lambda: None)
        view = ClusterPods(controller, store, "n0", node_grace=60, eviction_timeout=5)  # type: ignore[arg-type]
        start = time.perf_counter()
        for i in range(pods):
            view.create(PodIdentity("default", f"p{i}", "Pod", f"p{i}"), SPEC, {"app": "b"}, {}, created=time.time())
        decided = time.perf_counter() - start
        await view.writer.drain()
        written = time.perf_counter() - start
        spread = collections.Counter(o["spec"].get("nodeName") for o in store.list("Pod"))
        return decided, written, spread
    finally:
        await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args()
    alone = scheduler_alone(args.pods, args.nodes)
    print(f"scheduler alone: {args.pods} pods onto {args.nodes} nodes in {alone:.2f}s "
          f"({args.pods / alone:.0f} pods/s)")
    with tempfile.TemporaryDirectory(prefix="meshd-binding-bench-") as directory:
        etcd = await asyncio.to_thread(lambda: EtcdCluster(Path(directory) / "etcd").start())
        try:
            decided, written, spread = await through_etcd(etcd.endpoints, args.pods, args.nodes)
        finally:
            await asyncio.to_thread(etcd.stop)
    print(f"leader, bound and written to etcd: {args.pods} pods in {written:.2f}s ({args.pods / written:.0f} pods/s; "
          f"decisions {decided:.2f}s, writes the rest); per node: "
          + ", ".join(f"{n} {c}" for n, c in sorted(spread.items())))


if __name__ == "__main__":
    asyncio.run(main())

"""Scheduler throughput: 1,000 pods onto 3 nodes, a mix of plain Deployments (system default spreading),
Deployments with required pod anti-affinity per app, and Deployments with a DoNotSchedule topology spread;
side by side, the incremental `Scheduler` (`bind` pod after pod), `schedule()` called for each pod with the
pods placed so far (it brings its last index up to date), and a new `Scheduler` per pod (every placed pod
indexed again). All three must place every pod on the same node.

    python3 -m bench.scheduler_bench [--pods 1000] [--nodes 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from dataclasses import replace

from meshd.model.objects import Container, PodSpec, ResourceList, Resources
from meshd.model.scheduling import (
    PodAffinity,
    PodAffinityTerm,
    Scheduling,
    Selector,
    TopologySpreadConstraint,
)
from meshd.scheduler import NodeInfo, Placement, PodInfo, Scheduler, schedule
from meshd.scheduler.model import HOSTNAME

CONTAINER = Container("app", "busybox", resources=Resources(requests=ResourceList(100, 128 << 20)))


def workload(pods: int, seed: int = 15) -> list[PodInfo]:
    """40 % plain (8 apps), 30 % required anti-affinity over hostnames (3 replicas per app), 30 % topology
    spread with maxSkew 1 (6 apps), shuffled as several controllers would create them."""
    out: list[PodInfo] = []
    plain_spec = PodSpec((CONTAINER,))  # pods of one template share its spec, as a controller's do
    specs: dict[str, PodSpec] = {}
    plain, anti, spread = int(pods * 0.4), int(pods * 0.3), pods - int(pods * 0.4) - int(pods * 0.3)
    for i in range(plain):
        app = f"plain-{i % 8}"
        out.append(PodInfo("default", f"{app}-{i}", {"app": app}, plain_spec))
    for i in range(anti):
        app = f"anti-{i // 3}"
        term = PodAffinityTerm(HOSTNAME, Selector((("app", app),)))
        spec = specs.setdefault(app, PodSpec((CONTAINER,), scheduling=Scheduling(
            pod_anti_affinity=PodAffinity(required=(term,)))))
        out.append(PodInfo("default", f"{app}-{i}", {"app": app}, spec))
    for i in range(spread):
        app = f"spread-{i % 6}"
        constraint = TopologySpreadConstraint(1, HOSTNAME, "DoNotSchedule", Selector((("app", app),)))
        spec = specs.setdefault(app, PodSpec((CONTAINER,), scheduling=Scheduling(
            topology_spread_constraints=(constraint,))))
        out.append(PodInfo("default", f"{app}-{i}", {"app": app}, spec))
    random.Random(seed).shuffle(out)
    return out


def nodes_of(count: int) -> list[NodeInfo]:
    return [NodeInfo(f"node-{i}", {HOSTNAME: f"node-{i}"}, cpu_millicores=64_000, memory_bytes=256 << 30, pods=1000)
            for i in range(count)]


def incremental(pods: list[PodInfo], nodes: list[NodeInfo]) -> list[Placement]:
    state = Scheduler(nodes)
    return [state.bind(pod) for pod in pods]


def fresh(pods: list[PodInfo], nodes: list[NodeInfo]) -> list[Placement]:
    """A new Scheduler for each pod: every placed pod indexed again."""
    return _one_by_one(pods, nodes, lambda pod, placed: Scheduler(nodes, placed).place(pod))


def reusing(pods: list[PodInfo], nodes: list[NodeInfo]) -> list[Placement]:
    """schedule() for each pod, with every pod placed so far: it brings its last index up to date."""
    return _one_by_one(pods, nodes, lambda pod, placed: schedule(pod, nodes, placed))


def _one_by_one(pods, nodes, place):  # type: ignore[no-untyped-def]
    placed: list[PodInfo] = []
    out = []
    for pod in pods:
        placement = place(pod, placed)
        if placement.node is not None:
            placed.append(replace(pod, node=placement.node))
        out.append(placement)
    return out


def timed(run, pods, nodes, rounds):  # type: ignore[no-untyped-def]
    best, result = float("inf"), None
    for _ in range(rounds):
        start = time.perf_counter()
        result = run(pods, nodes)
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="best of N runs")
    args = parser.parse_args()
    pods, nodes = workload(args.pods), nodes_of(args.nodes)
    print(f"scheduler: {len(pods)} pods onto {len(nodes)} nodes (40% plain, 30% required anti-affinity per app, "
          f"30% topology spread maxSkew 1); best of {args.rounds}")
    rows = []
    for label, run in (("Scheduler.bind()", incremental), ("schedule(pod, nodes, placed)", reusing),
                       ("new Scheduler per pod", fresh)):
        seconds, placements = timed(run, pods, nodes, args.rounds)
        rows.append((label, seconds, placements))
        bound = [p for p in placements if p.node is not None]
        print(f"  {label:<28} {seconds:8.3f} s  {len(pods) / seconds:9.0f} pods/s  "
              f"{seconds / len(pods) * 1e6:8.1f} us/pod  placed {len(bound)}, pending {len(pods) - len(bound)}")
    first = rows[0][2]
    for label, _, other in rows[1:]:
        assert [(p.node, p.message) for p in first] == [(p.node, p.message) for p in other], f"{label} disagrees"
    per_node = Counter(p.node for p in first if p.node)
    print(f"  same placements all three ways; per node: {dict(sorted(per_node.items()))}")
    print(f"  Scheduler.bind() is {rows[2][1] / rows[0][1]:.1f}x and schedule() {rows[2][1] / rows[1][1]:.1f}x "
          "faster than a new Scheduler per pod")
    pending = Counter(p.message for p in first if p.node is None)
    for message, n in pending.items():
        print(f"  pending x{n}: {message}")


if __name__ == "__main__":
    main()

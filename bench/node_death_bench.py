"""How long a dead node's pods take to run elsewhere: three `meshd agent --store etcd://...` processes (process
driver, no sidecar) on one real etcd (Debian's etcd-server), a Deployment of 6 (2 per node); each round SIGKILLs
the follower agent running the most of them (its pods run on, as on a machine cut off) and times until `kubectl get pods -o wide` shows 6
pods Running on the two others; then the agent starts again and stops its old pods before the next round. The
floor is --node-grace (3 s here) + --pod-eviction-timeout (2 s here) counted from the node's last Lease renewal
(up to grace/3 before the kill); the rest is the leader's one-second eviction tick, the new pods' start, and
their status reaching the store.

    python bench/node_death_bench.py [--rounds 3]
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

from tests.integration.etcd_harness import EtcdCluster
from tests.integration.test_cluster_etcd import GRACE, leaders, poll
from tests.integration.test_cluster_pods import (
    DEPLOYMENT,
    EVICTION,
    PodMember,
    apply,
    kill_pods,
    running_pods,
    spread,
)


async def rounds(directory: Path, count: int) -> list[float]:
    etcd = await asyncio.to_thread(lambda: EtcdCluster(directory / "etcd").start())
    members = [PodMember(directory / name, name, etcd.url) for name in ("n1", "n2", "n3")]
    times = []
    try:
        await asyncio.gather(*(m.start() for m in members))
        (leader,) = await poll(lambda: leaders(members))
        lead = next(m for m in members if m.name == leader)
        await apply(lead, "deploy.yaml", DEPLOYMENT)
        await poll(lambda: spread(lead, {"n1": 2, "n2": 2, "n3": 2}), timeout=120)
        followers = [m for m in members if m is not lead]
        for i in range(count):
            before = await poll(lambda: _settled(lead, members), timeout=120)
            victim = max(followers, key=lambda m: len(before.get(m.name, [])))  # the follower running the most
            others = [m for m in members if m is not victim]
            victim.kill()
            start = time.monotonic()
            await poll(lambda o=others: _six_on(lead, o), timeout=120)
            times.append(time.monotonic() - start)
            print(f"round {i + 1}: {victim.name} killed ({len(before.get(victim.name, []))} pods) -> running "
                  f"elsewhere in {times[-1]:.2f}s")
            orphans = running_pods(victim)
            await victim.start()
            await poll(lambda o=orphans, v=victim: _gone(o, v), timeout=120)
    finally:
        for member in members:
            await member.stop()
            kill_pods(member)
        await asyncio.to_thread(etcd.stop)
    return times


async def _settled(lead: PodMember, members: list[PodMember]) -> dict | None:
    from tests.integration.test_cluster_pods import pods_by_node

    nodes = await pods_by_node(lead)
    ok = sum(len(p) for p in nodes.values()) == 6 and all(s == "Running" for p in nodes.values() for _, s in p)
    return nodes if ok else None


async def _six_on(lead: PodMember, others: list[PodMember]) -> bool:
    from tests.integration.test_cluster_pods import pods_by_node

    nodes = await pods_by_node(lead)
    return (set(nodes) <= {m.name for m in others} and sum(len(p) for p in nodes.values()) == 6
            and all(s == "Running" for p in nodes.values() for _, s in p))


async def _gone(orphans: dict[str, int], victim: PodMember) -> bool:
    left = running_pods(victim)
    return not any(name in left for name in orphans)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshd-node-death-") as directory:
        times = await rounds(Path(directory), args.rounds)
    print(f"a dead node's pods running elsewhere (node grace {GRACE}s + eviction timeout {EVICTION}s): median "
          f"{statistics.median(times):.2f}s, min {min(times):.2f}s, max {max(times):.2f}s over {len(times)} rounds")


if __name__ == "__main__":
    asyncio.run(main())

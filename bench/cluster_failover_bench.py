"""Cluster failover on real test hosts (network namespaces on a bridge, each with its own agent, one Debian etcd:
tests/integration/netns_harness.py; root only), each measured over several runs, medians printed side by side:

- leader failover: the leader's host killed (SIGKILL to everything in its namespace) -> a survivor's
  `meshd_leader` is 1. Bounded by --leader-ttl (the dead leader's etcd lease must expire).
- NotReady detection: a follower's cable pulled (its veth down) -> the leader's API lists its Node not Ready.
  Bounded by --node-grace plus the leader's check interval.
- pods elsewhere: the host running most of a Deployment's pods killed -> as many Running replicas on the other
  nodes (as their agents' APIs list them). On main today the leader runs every pod, so this is leader failover
  plus the new leader starting the pods; once pods are bound to nodes (spec.nodeName, each agent running its
  own) the same measure is "host death -> its pods running elsewhere", with no change here.

After each run the host is brought back (restarted or healed) and the cluster left to settle, untimed.

    python3 -m bench.cluster_failover_bench [--runs 3] [--hosts 3] [--grace 3] [--ttl 3] [--only leader,notready]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.netns_harness import TestLan, usable, wait_for  # noqa: E402

POLL = 0.02  # seconds between two looks: the resolution of every figure here

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: failover}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: failover}}
  template:
    metadata: {labels: {app: failover}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, image: busybox, command: [sleep, "3600"]}
"""


def settle(lan: TestLan) -> str:
    """Every agent healthy, every node Ready as the leader sees it, one leader: its name."""
    for host in lan.hosts:
        lan.wait_agent(host.index)
    leader = str(wait_for(lan.leader, timeout=120, what="one leader", explain=lan.explain))
    index = next(h.index for h in lan.hosts if h.name == leader)
    wait_for(lambda: len(ready_nodes(lan, index)) == len(lan.hosts), timeout=120, what="every node Ready",
             explain=lan.explain)
    return leader


def ready_nodes(lan: TestLan, i: int) -> set[str]:
    status, body = lan.api(i, "/api/v1/nodes")
    if status != 200:
        return set()
    return {item["metadata"]["name"] for item in body["items"]
            if any(c["type"] == "Ready" and c["status"] == "True" for c in item["status"].get("conditions", []))}


def timed(until: Callable[[], bool], start: float, timeout: float = 120.0) -> float:
    """Seconds from `start` (time.monotonic()) until `until()` holds, looked at every POLL seconds."""
    while not until():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"not within {timeout:g}s")
        time.sleep(POLL)
    return time.monotonic() - start


def leader_failover(lan: TestLan) -> float:
    leader = settle(lan)
    dead = next(h for h in lan.hosts if h.name == leader)
    survivors = [h for h in lan.hosts if h is not dead]
    start = time.monotonic()
    lan.kill_host(dead.index)
    elapsed = timed(lambda: any(lan.metric(h.index, "meshd_leader") == 1 for h in survivors), start)
    lan.start_agent(dead.index)
    return elapsed


def notready_detection(lan: TestLan) -> float:
    leader = settle(lan)
    watcher = next(h for h in lan.hosts if h.name == leader)
    cut = next(h for h in lan.hosts if h is not watcher)
    start = time.monotonic()
    lan.cut(cut.index)
    try:
        elapsed = timed(lambda: cut.name not in ready_nodes(lan, watcher.index), start)
    finally:
        lan.heal(cut.index)
    return elapsed


def running_replicas(lan: TestLan, excluding: str = "") -> dict[str, str]:
    """Running pods of the Deployment `failover` as the live agents list them: name -> node."""
    found: dict[str, str] = {}
    for host in lan.hosts:
        if host.name == excluding or host.proc is None or host.proc.poll() is not None:
            continue
        status, body = lan.api(host.index, "/api/v1/namespaces/default/pods?labelSelector=app%3Dfailover",
                               timeout=2)
        for pod in body.get("items", []) if status == 200 else []:
            node = pod.get("spec", {}).get("nodeName") or host.name
            if pod.get("status", {}).get("phase") == "Running" and node != excluding:
                found[pod["metadata"]["name"]] = node
    return found


def pods_elsewhere(lan: TestLan, replicas: int) -> float:
    leader = settle(lan)
    index = next(h.index for h in lan.hosts if h.name == leader)
    status, body = lan.api(index, "/v1/apply", method="POST", body=DEPLOYMENT.replace("REPLICAS", str(replicas)))
    if status != 200:
        raise RuntimeError(f"apply: {status} {body}")
    wait_for(lambda: len(running_replicas(lan)) >= replicas, timeout=120, what=f"{replicas} replicas Running",
             explain=lan.explain)
    by_node: dict[str, int] = {}
    for node in running_replicas(lan).values():
        by_node[node] = by_node.get(node, 0) + 1
    busiest = max(by_node, key=lambda n: by_node[n])
    dead = next(h for h in lan.hosts if h.name == busiest)
    start = time.monotonic()
    lan.kill_host(dead.index)
    elapsed = timed(lambda: len(running_replicas(lan, excluding=dead.name)) >= replicas, start)
    lan.start_agent(dead.index)
    leader = settle(lan)
    index = next(h.index for h in lan.hosts if h.name == leader)
    lan.api(index, "/apis/apps/v1/namespaces/default/deployments/failover", method="DELETE")
    wait_for(lambda: not running_replicas(lan), timeout=120, what="the Deployment's pods gone", explain=lan.explain)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--grace", type=float, default=3.0, help="--node-grace of every agent (seconds)")
    parser.add_argument("--ttl", type=int, default=3, help="--leader-ttl of every agent (seconds)")
    parser.add_argument("--replicas", type=int, default=3, help="pods of the Deployment for 'pods'")
    parser.add_argument("--only", default="leader,notready,pods", help="which measures, comma-separated")
    parser.add_argument("--keep", action="store_true", help="keep the hosts' logs (in a temporary directory)")
    args = parser.parse_args(argv)
    if why := usable():
        print(f"cannot build test hosts: {why}", file=sys.stderr)
        return 2
    measures: dict[str, tuple[str, Callable[[TestLan], float]]] = {
        "leader": ("leader failover: leader's host killed -> another leads", leader_failover),
        "notready": ("NotReady detection: host cut off -> leader lists it not Ready", notready_detection),
        "pods": (f"pods elsewhere: busiest host killed -> {args.replicas} Running on the others",
                 lambda lan: pods_elsewhere(lan, args.replicas)),
    }
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    if unknown := [name for name in chosen if name not in measures]:
        parser.error(f"--only: unknown {', '.join(unknown)} (known: {', '.join(measures)})")
    directory = Path(tempfile.mkdtemp(prefix="meshd-failover-bench-"))
    results: dict[str, list[float]] = {name: [] for name in chosen}
    with TestLan(directory, hosts_wanted=args.hosts, node_grace=args.grace, leader_ttl=args.ttl) as lan:
        print(f"{args.hosts} hosts on {lan.bridge} ({lan.subnet}), etcd {lan.store}, node grace {args.grace:g}s, "
              f"leader TTL {args.ttl}s, logs in {directory}")
        for run in range(args.runs):  # interleaved: every measure sees the same machine load over the runs
            for name in chosen:
                elapsed = measures[name][1](lan)
                results[name].append(elapsed)
                print(f"  run {run + 1} {name}: {elapsed:.2f}s", flush=True)
    print(f"\n{'measure':<70} {'median':>8} {'min':>7} {'max':>7}  runs")
    for name in chosen:
        values = results[name]
        print(f"{measures[name][0]:<70} {statistics.median(values):>7.2f}s {min(values):>6.2f}s "
              f"{max(values):>6.2f}s  {len(values)}")
    if not args.keep:
        import shutil

        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

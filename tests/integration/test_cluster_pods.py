"""Pods across nodes: three `meshd agent --store etcd://...` processes (process driver, each its own node name,
state dir, API and DNS port, no sidecar) on one real etcd, driven with the real kubectl. A Deployment of 6
lands 2 per node and each agent runs exactly the pods bound to its node (their processes, from each driver's
records); an agent SIGKILLed (its pods keep running, as on a partitioned machine) loses them to the two others
after the grace; restarted, it stops its old pods (6 pods in all, no duplicate); scaled to 3, the pods are
stopped on their own nodes; a bare Pod naming `nodeName` runs there."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from meshd.driver.base import LABEL_POD
from meshd.driver.process import proc_alive
from tests.integration.etcd_harness import EtcdCluster
from tests.integration.test_cluster_etcd import Member, leaders, poll

pytestmark = pytest.mark.slow

EVICTION = 2  # --pod-eviction-timeout; the node grace is test_cluster_etcd's (3 s)


class PodMember(Member):
    def command(self) -> list[str]:
        return [*super().command(), "--pod-eviction-timeout", str(EVICTION)]


def running_pods(member: Member) -> dict[str, int]:
    """The pods whose processes run on this member's node: pod name -> pid (its process driver's records)."""
    records = member.state_dir / "process" / "process-driver" / "records"
    out = {}
    for path in records.glob("*.json") if records.exists() else ():
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("kind") == "container" and record.get("pid") and proc_alive(record["pid"],
                                                                                  record.get("proc_start")):
            out[record["labels"].get(LABEL_POD, "")] = record["pid"]
    return out


def kill_pods(member: Member) -> None:
    """Stops what a test left running on a member (the pids its driver recorded, never by name)."""
    for pid in running_pods(member).values():
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
async def members(tmp_path: Path, etcd: EtcdCluster) -> AsyncIterator[list[PodMember]]:
    started = [PodMember(tmp_path / name, name, etcd.url) for name in ("n1", "n2", "n3")]
    try:
        await asyncio.gather(*(m.start() for m in started))
        yield started
    finally:
        alive = [m for m in started if m.proc is not None and m.proc.returncode is None]
        try:
            if alive:
                for group, resource in (("/apis/apps/v1", "deployments"), ("/apis/apps/v1", "daemonsets"),
                                        ("/apis/apps/v1", "statefulsets"), ("/apis/batch/v1", "jobs"),
                                        ("/api/v1", "pods")):
                    status, body = await alive[0].request("GET", f"{group}/namespaces/default/{resource}")
                    for item in body.get("items", []) if status == 200 else []:
                        name = item["metadata"]["name"]
                        await alive[0].request("DELETE", f"{group}/namespaces/default/{resource}/{name}")
                await poll(lambda: _nothing_runs(alive), timeout=60)
        except Exception as error:  # noqa: BLE001 - whatever happened, every agent and pod is stopped below
            print(f"cleaning up: {error!r}")
        await asyncio.gather(*(m.stop() for m in started))
        for member in started:
            kill_pods(member)


async def _nothing_runs(members: list[PodMember]) -> bool:
    return not any(running_pods(m) for m in members) and not await members[0].items("pods")


async def pods_by_node(member: Member, prefix: str = "spread-") -> dict[str, list[tuple[str, str]]]:
    """`kubectl get pods -o wide`: node -> [(pod, status)] of the pods named `prefix`..."""
    code, out, err = await member.kubectl("get", "pods", "-o", "wide", "--no-headers")
    assert code == 0, err
    nodes: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 7 and fields[0].startswith(prefix):
            nodes[fields[6]].append((fields[0], fields[2]))
    return dict(nodes)


async def spread(member: Member, per_node: dict[str, int], prefix: str = "spread-"
                 ) -> dict[str, list[tuple[str, str]]] | None:
    nodes = await pods_by_node(member, prefix)
    ok = ({n: len(p) for n, p in nodes.items()} == per_node
          and all(status == "Running" for p in nodes.values() for _, status in p))
    return nodes if ok else None


def each_runs_its_own(members: list[PodMember], nodes: dict[str, list[tuple[str, str]]],
                      prefix: str = "spread-") -> bool:
    return all({p for p in running_pods(m) if p.startswith(prefix)} == {name for name, _ in nodes.get(m.name, [])}
               for m in members)


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: spread}
spec:
  replicas: 6
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox
        command: [sleep, "3600"]
        ports: [{containerPort: 8080}]
        readinessProbe:
          exec: {command: ["true"]}
          periodSeconds: 1
"""

DAEMONSET = """\
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, image: busybox, command: [sleep, "3600"]}
"""

PINNED = """\
apiVersion: v1
kind: Pod
metadata: {name: pinned}
spec:
  nodeName: n2
  terminationGracePeriodSeconds: 1
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"]}
"""

TOO_BIG = """\
apiVersion: v1
kind: Pod
metadata: {name: too-big}
spec:
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"], resources: {requests: {cpu: "100"}}}
"""


async def apply(member: PodMember, name: str, text: str) -> None:
    (member.directory / name).write_text(text)
    code, _, err = await member.kubectl("apply", "-f", str(member.directory / name))
    assert code == 0, err


async def test_pods_bound_to_nodes_move_off_a_dead_node_and_never_run_twice(members: list[PodMember]) -> None:
    by_name = {m.name: m for m in members}
    (leader,) = await poll(lambda: leaders(members))
    lead = by_name[leader]
    await apply(lead, "deploy.yaml", DEPLOYMENT)
    await apply(members[2], "ds.yaml", DAEMONSET)

    # 2 per node, each agent running exactly its own; a DaemonSet's pod on every node
    two_each, one_each = {"n1": 2, "n2": 2, "n3": 2}, {"n1": 1, "n2": 1, "n3": 1}
    nodes = await poll(lambda: spread(members[1], two_each), timeout=90)
    assert await poll(lambda: _runs_own(members, members[0]), timeout=60), nodes
    await poll(lambda: spread(members[0], one_each, "agent-"), timeout=60)

    async def all_ready() -> bool:  # counted by a follower, from the status each node wrote
        code, out, _ = await members[2].kubectl("get", "deployment", "spread", "--no-headers")
        return code == 0 and out.split()[1] == "6/6"
    assert await poll(all_ready, timeout=60)
    name = nodes["n3"][0][0]
    code, out, _ = await members[0].kubectl("get", "pod", name, "-o", "json")
    pod = json.loads(out)
    assert pod["spec"]["nodeName"] == "n3" and pod["status"]["hostIP"] == "127.0.0.1", pod["status"]
    assert pod["spec"]["containers"][0]["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    ref = pod["metadata"]["ownerReferences"][0]
    assert ref["kind"] == "ReplicaSet" and ref["uid"] and pod["metadata"]["labels"]["app"] == "spread"
    conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conditions == {"PodScheduled": "True", "Initialized": "True", "Ready": "True", "ContainersReady": "True"}
    assert pod["status"]["containerStatuses"][0]["ready"] and pod["status"]["podIP"]
    # its status is written when it changes, not at every probe (one a second here)
    version = pod["metadata"]["resourceVersion"]
    await asyncio.sleep(3)
    code, out, _ = await members[1].kubectl("get", "pod", name, "-o", "jsonpath={.metadata.resourceVersion}")
    assert out == version

    # scaled to 3: one stops on each node, on its own node
    code, _, err = await members[1].kubectl("scale", "deployment", "spread", "--replicas", "3")
    assert code == 0, err
    nodes = await poll(lambda: spread(members[2], one_each), timeout=60)
    assert await poll(lambda: _runs_own(members, members[2]), timeout=60), nodes
    code, _, err = await members[1].kubectl("scale", "deployment", "spread", "--replicas", "6")
    assert code == 0, err
    await poll(lambda: spread(members[2], two_each), timeout=60)
    assert await poll(lambda: _runs_own(members, members[2]), timeout=60)

    # a follower dies (its pods keep running, as on a machine cut off): they are replaced on the two others
    victim = next(m for m in members if m.name != leader)
    survivors = [m for m in members if m is not victim]
    orphans = {k: v for k, v in running_pods(victim).items() if k.startswith("spread-")}
    assert len(orphans) == 2
    victim.kill()
    killed = time.monotonic()
    others = {m.name: 3 for m in survivors}
    await poll(lambda: spread(lead, others), timeout=90)
    moved = time.monotonic() - killed
    print(f"pods of the dead node running elsewhere {moved:.1f}s after the kill "
          f"(node grace 3s + eviction timeout {EVICTION}s)")
    assert await poll(lambda: _runs_own(survivors, lead), timeout=60)
    code, out, _ = await lead.kubectl("get", "events", "--field-selector", "reason=TaintManagerEviction",
                                      "--no-headers")
    assert code == 0 and out.count("TaintManagerEviction") == 2, out  # the DaemonSet's pod stays its node's
    assert {n: len(p) for n, p in (await pods_by_node(lead, "agent-")).items()} == one_each

    # it comes back: its old pods stop, nothing runs twice, 6 in all; its DaemonSet pod runs on
    await victim.start()
    await poll(lambda: _no_orphans(orphans), timeout=60)
    nodes = await poll(lambda: spread(lead, others), timeout=30)
    assert each_runs_its_own(members, nodes)
    await poll(lambda: spread(lead, one_each, "agent-"), timeout=60)
    assert each_runs_its_own(members, await pods_by_node(lead, "agent-"), "agent-")

    # a bare Pod naming its node runs there; one that fits nowhere stays Pending, and says why
    await apply(members[0], "pinned.yaml", PINNED)
    await poll(lambda: _runs_on(by_name["n2"], "pinned", members), timeout=60)

    async def pinned_running() -> bool:  # as another agent shows it, from the status n2 wrote
        code, out, _ = await members[2].kubectl("get", "pod", "pinned", "-o", "wide", "--no-headers")
        return code == 0 and out.split()[6] == "n2" and out.split()[2] == "Running"
    assert await poll(pinned_running, timeout=60)
    await apply(members[0], "big.yaml", TOO_BIG)

    async def unschedulable() -> str:
        code, out, _ = await members[1].kubectl("get", "pod", "too-big", "-o", "json")
        status = json.loads(out)["status"] if code == 0 else {}
        scheduled = next((c for c in status.get("conditions", []) if c["type"] == "PodScheduled"), {})
        return scheduled.get("message", "") if scheduled.get("reason") == "Unschedulable" else ""
    assert "0/3 nodes are available: 3 Insufficient cpu." == await poll(unschedulable, timeout=60)
    assert not any("too-big" in running_pods(m) for m in members)


async def _runs_own(members: list[PodMember], via: Member) -> bool:
    nodes = await pods_by_node(via)
    return each_runs_its_own(members, nodes)


async def _no_orphans(orphans: dict[str, int]) -> bool:
    return not any(proc_alive(pid, None) for pid in orphans.values())


async def _runs_on(member: PodMember, pod: str, members: list[PodMember]) -> bool:
    return pod in running_pods(member) and not any(pod in running_pods(m) for m in members if m is not member)


async def test_deletes_and_rollouts_cross_nodes_and_a_dead_leader_disturbs_no_other_node(
        members: list[PodMember]) -> None:
    by_name = {m.name: m for m in members}
    (leader,) = await poll(lambda: leaders(members))
    followers = [m for m in members if m.name != leader]
    await apply(followers[0], "deploy.yaml", DEPLOYMENT)
    two_each = {"n1": 2, "n2": 2, "n3": 2}
    nodes = await poll(lambda: spread(followers[1], two_each), timeout=90)
    assert await poll(lambda: _runs_own(members, members[0]), timeout=60)

    # a pod deleted through a follower stops on its node; its ReplicaSet replaces it
    node = followers[1].name
    (gone, _), _ = nodes[node]
    pid = running_pods(by_name[node])[gone]
    code, _, err = await followers[0].kubectl("delete", "pod", gone, "--wait=false")
    assert code == 0, err

    async def replaced() -> bool:
        now = await pods_by_node(followers[0])
        names = {n for pods in now.values() for n, _ in pods}
        return (gone not in names and len(names) == 6 and not proc_alive(pid, None)
                and all(s == "Running" for pods in now.values() for _, s in pods)
                and each_runs_its_own(members, now))
    assert await poll(replaced, timeout=60)

    # a rollout replaces every pod, across the nodes, one ReplicaSet to the next (followed through a follower)
    before = {n for pods in (await pods_by_node(members[0])).values() for n, _ in pods}
    code, _, err = await followers[1].kubectl("rollout", "restart", "deployment", "spread")
    assert code == 0, err
    code, out, err = await followers[1].kubectl("rollout", "status", "deployment", "spread", "--timeout", "50s")
    assert code == 0, out + err

    async def renewed() -> bool:  # (the spread follows the scheduler's choices while old and new pods overlap)
        now = await pods_by_node(members[0])
        names = {n for pods in now.values() for n, _ in pods}
        return (len(names) == 6 and not before & names and each_runs_its_own(members, now)
                and all(s == "Running" for pods in now.values() for _, s in pods))
    assert await poll(renewed, timeout=60)

    # the leader dies (its pods run on): another leads, the other nodes' pods are untouched, its own move
    lead = by_name[leader]
    kept = {m.name: running_pods(m) for m in followers}
    orphans = {k: v for k, v in running_pods(lead).items() if k.startswith("spread-")}
    lead.kill()
    (new_leader,) = await poll(lambda: leaders(followers), timeout=60)

    async def on_followers(via: Member) -> dict[str, list[tuple[str, str]]] | None:
        now = await pods_by_node(via)
        ok = (set(now) <= {m.name for m in followers} and sum(len(p) for p in now.values()) == 6
              and all(s == "Running" for pods in now.values() for _, s in pods))
        return now if ok else None
    await poll(lambda: on_followers(followers[0]), timeout=90)
    assert all(kept[m.name].items() <= running_pods(m).items() for m in followers)  # same pods, same processes
    await lead.start()
    await poll(lambda: _no_orphans(orphans), timeout=60)
    nodes = await poll(lambda: on_followers(by_name[new_leader]), timeout=30)
    assert each_runs_its_own(members, nodes) and not running_pods(lead)


JOB = """\
apiVersion: batch/v1
kind: Job
metadata: {name: count}
spec:
  completions: 3
  parallelism: 3
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: main, image: busybox, command: [sh, -c, "sleep 1"]}
"""

STATEFULSET = """\
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 3
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, image: busybox, command: [sleep, "3600"]}
"""


async def test_jobs_and_statefulsets_run_their_pods_across_nodes(members: list[PodMember]) -> None:
    (leader,) = await poll(lambda: leaders(members))
    lead = next(m for m in members if m.name == leader)
    await apply(members[0], "job.yaml", JOB)
    await apply(members[1], "sts.yaml", STATEFULSET)

    # the Job's 3 pods run on the 3 nodes, finish there, and the Job completes
    code, out, err = await lead.kubectl("wait", "--for=condition=complete", "job/count", "--timeout=50s")
    assert code == 0, out + err
    code, out, _ = await members[2].kubectl("get", "pods", "-l", "job-name=count", "-o", "wide", "--no-headers")
    assert sorted((line.split()[2], line.split()[6]) for line in out.splitlines()) == [
        ("Completed", "n1"), ("Completed", "n2"), ("Completed", "n3")], out

    # the StatefulSet's pods, one by one, each on the node running the fewest; scaled down from the top
    nodes = await poll(lambda: spread(members[2], {"n1": 1, "n2": 1, "n3": 1}, "db-"), timeout=60)
    assert sorted(n for pods in nodes.values() for n, _ in pods) == ["db-0", "db-1", "db-2"]
    assert each_runs_its_own(members, nodes, "db-")
    code, _, err = await lead.kubectl("scale", "statefulset", "db", "--replicas", "1")
    assert code == 0, err

    async def only_db0() -> bool:
        now = await pods_by_node(members[0], "db-")
        return [n for pods in now.values() for n, _ in pods] == ["db-0"] and each_runs_its_own(members, now, "db-")
    assert await poll(only_db0, timeout=60)

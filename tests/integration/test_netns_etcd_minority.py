"""An agent whose first etcd member is cut off from the other two (etcd's minority) moves to a member with a
raft leader; an agent that reaches only that member reports the store lost, and its node turns NotReady
elsewhere, while its pods keep running. Real test hosts: two agents in network namespaces on a bridge
(tests/integration/netns_harness.py), three etcd members each in a namespace of its own
(tests/integration/netns_etcd.py); host0's `--store` names m0 first, host1's m1 first.

1. m0 (a raft follower) is cut off from m1 and m2 (its routes to them blackholed): it answers serializable
   reads from its own state, and once it notices it refuses everything for want of a leader. A `kubectl apply`
   through host0 right after the cut succeeds (its write moves on from m0 within a member's share of the
   request's time), host1 reads it, host0's watch moves off m0, host0 never reports the store lost and its
   node stays Ready as host1 sees it.
2. host0 then loses m1 and m2 too (its routes to them blackholed): it reaches only m0, which answers without a
   leader. host0 reports the store lost (/healthz 503 naming it, `meshd_store_up` 0, a log line), host1 sees
   node host0 NotReady, host0's pod runs on (the same process), a write through host0 fails.
3. Healed: host0 reports the store again and its node is Ready."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.netns_etcd import SplitEtcdLan
from tests.integration.netns_harness import TestLan, usable, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420),
              pytest.mark.skipif(bool(usable()), reason=usable() or "usable")]

GRACE = 3.0

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: sleeper}
spec:
  replicas: 2
  selector: {matchLabels: {app: sleeper}}
  template:
    metadata: {labels: {app: sleeper}}
    spec:
      terminationGracePeriodSeconds: 1
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - topologyKey: kubernetes.io/hostname
            labelSelector: {matchLabels: {app: sleeper}}
      containers:
      - {name: main, image: busybox, command: [sleep, "3600"]}
"""

CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}}}
data: {{written: through-host0}}
"""


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[SplitEtcdLan]:
    with SplitEtcdLan(tmp_path / "lan", hosts_wanted=2, node_grace=GRACE, mdns=False,
                      orders={0: (0, 1, 2), 1: (1, 2, 0)}) as built:
        yield built


def sleepers(lan: TestLan, i: int) -> set[int]:
    """The pids of the pod processes (`sleep 3600`) running on host i."""
    found = set()
    for pid in lan.pids(i):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x003600\x00":
                found.add(pid)
        except OSError:
            continue
    return found


def raft_leader(lan: SplitEtcdLan) -> int | None:
    for k in range(3):
        status = lan.status(k)
        if status.get("leader") and status["leader"] == status["header"]["member_id"]:
            return k
    return None


def make_follower(lan: SplitEtcdLan, k: int) -> None:
    """etcd's raft leadership away from member k (etcd's move-leader), so that cutting k off is a follower's
    loss, with no election on the other side."""
    from tests.integration.test_netns_etcd_member_loss import etcd_call

    assert lan.etcd is not None
    current = wait_for(lambda: (raft_leader(lan),) if raft_leader(lan) is not None else None, timeout=30,
                       what="an etcd raft leader")[0]
    if current == k:
        target = lan.status((k + 1) % 3)["header"]["member_id"]
        etcd_call(lan.etcd.members[k], "/v3/maintenance/transfer-leadership", {"targetID": target})
    wait_for(lambda: raft_leader(lan) not in (None, k), timeout=30, what=f"a raft leader other than m{k}")


def apply(lan: SplitEtcdLan, i: int, name: str, tmp_path: Path) -> tuple[float, int, str]:
    manifest = tmp_path / f"{name}.yaml"
    manifest.write_text(CONFIG.format(name=name))
    start = time.monotonic()
    out = lan.kubectl(i, "apply", "-f", str(manifest), timeout=90)
    return time.monotonic() - start, out.returncode, out.stdout + out.stderr


def node_ready(lan: TestLan, i: int, name: str) -> str:
    return str(lan.nodes(i).get(name, {}).get("ready", ""))


def test_an_agent_leaves_a_cut_off_etcd_member_and_reports_the_store_lost_when_only_that_one_is_left(
        lan: SplitEtcdLan, tmp_path: Path) -> None:
    assert lan.etcd is not None
    wait_for(lambda: {n for n, node in lan.nodes(1).items() if node["ready"] == "True"} == {"host0", "host1"},
             timeout=60, what="2 Ready nodes", explain=lan.explain)
    deployment = tmp_path / "sleeper.yaml"
    deployment.write_text(DEPLOYMENT)
    out = lan.kubectl(0, "apply", "-f", str(deployment))
    assert out.returncode == 0, out.stderr + lan.explain()
    pod = wait_for(lambda: sleepers(lan, 0), timeout=90, what="host0's pod running", explain=lan.explain)
    assert lan.metric(0, "meshd_store_disconnects_total") == 0, lan.explain()

    # 1. m0 cut off from m1 and m2: host0 moves on
    make_follower(lan, 0)
    lan.isolate(0)
    cut_at = time.monotonic()
    took, code, said = apply(lan, 0, "after-the-cut", tmp_path)
    assert code == 0, said + lan.explain()
    out = lan.kubectl(1, "get", "configmap", "after-the-cut", "-o", "jsonpath={.data.written}")
    assert out.stdout == "through-host0", out.stderr
    wait_for(lambda: not lan.has_leader(0), timeout=30, what="m0 without a raft leader", explain=lan.explain)
    settled = time.monotonic()
    samples = []
    while time.monotonic() - settled < 3 * GRACE:  # the heartbeat renews through m1/m2 all along
        samples.append((lan.healthz(0)[0], lan.metric(0, "meshd_store_up")))
        time.sleep(0.5)
    assert all(s == (200, 1) for s in samples), f"{samples}{lan.explain()}"
    assert node_ready(lan, 1, "host0") == "True", lan.explain()
    assert lan.metric(0, "meshd_store_disconnects_total") == 0, lan.explain()
    took_settled, code, said = apply(lan, 0, "while-cut", tmp_path)
    assert code == 0, said + lan.explain()
    assert "watching through" in lan.hosts[0].log.read_text(), lan.explain()  # its watch left m0
    assert sleepers(lan, 0) == pod

    # 2. host0 reaches only m0, which has no leader: the store is lost for host0, not its pods
    lan.block(0, [1, 2])
    blocked_at = time.monotonic()
    status, body = wait_for(lambda: (lambda h: h if h[0] == 503 else None)(lan.healthz(0)), timeout=30,
                            what="host0's /healthz 503", explain=lan.explain)
    reported = time.monotonic() - blocked_at
    assert "store" in body, body
    assert lan.metric(0, "meshd_store_up") == 0
    assert "raft leader" in lan.hosts[0].log.read_text(), lan.explain()
    wait_for(lambda: node_ready(lan, 1, "host0") not in ("True", ""), timeout=30, what="host0 NotReady on host1",
             explain=lan.explain)
    not_ready = time.monotonic() - blocked_at
    _, code, said = apply(lan, 0, "through-the-minority", tmp_path)
    assert code != 0, said
    assert sleepers(lan, 0) == pod, lan.explain()  # the pod runs on

    # 3. healed
    lan.unblock(0, [1, 2])
    lan.rejoin(0)
    wait_for(lambda: lan.healthz(0)[0] == 200 and lan.metric(0, "meshd_store_up") == 1, timeout=60,
             what="host0 reporting the store again", explain=lan.explain)
    wait_for(lambda: node_ready(lan, 1, "host0") == "True", timeout=60, what="host0 Ready again",
             explain=lan.explain)
    print(f"m0 cut off from m1/m2: a kubectl apply through host0 (m0 first in its --store) right after the cut "
          f"took {took:.2f}s, {took_settled:.2f}s once m0 knew it had no leader "
          f"({settled - cut_at:.1f}s after the cut); host0 reaching only m0: store reported lost after "
          f"{reported:.1f}s, host0 NotReady on host1 after {not_ready:.1f}s (grace {GRACE:g}s)")

"""An etcd member lost from a three-member etcd changes nothing for users: two test hosts (network namespaces
on a bridge, tests/integration/netns_harness.py), each its own `meshd agent` with the process driver and its
node sidecar, both given all three members in `--store` (Debian's etcd-server, clients on the bridge's
address). The member both agents name first, made etcd's raft leader (the worst case: a raft election on top
of the loss), is SIGKILLed while a client on host1 sends requests through its
sidecar: no request fails, neither agent reports the store lost (`/healthz` 200, `meshd_store_disconnects_total`
0), `kubectl apply` and `kubectl scale` through either agent work, and curl through each host's sidecar reaches
every replica on both nodes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.etcd_harness import EtcdCluster, EtcdMember
from tests.integration.netns_harness import TestLan, usable, wait_for
from tests.integration.test_netns_cluster_e2e import MANIFEST, SERVER, answers, pods

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420),
              pytest.mark.skipif(bool(usable()), reason=usable() or "usable")]

CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: after-the-loss}
data: {member: lost}
"""


def etcd_call(member: EtcdMember, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(f"http://{member.endpoint}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return dict(json.loads(response.read()))


def raft_leader(cluster: EtcdCluster) -> EtcdMember | None:
    """The member that is etcd's raft leader (by its own status), None while there is none."""
    for member in cluster.members:
        try:
            status = etcd_call(member, "/v3/maintenance/status", {})
        except OSError:
            continue
        if status.get("leader") and status.get("leader") == status.get("header", {}).get("member_id"):
            return member
    return None


def make_leader(cluster: EtcdCluster, wanted: EtcdMember) -> None:
    """etcd's raft leadership moved to `wanted` (etcdctl move-leader, through the gateway): losing it then is
    the worst case, a raft election on top of a lost member."""
    target = etcd_call(wanted, "/v3/maintenance/status", {})["header"]["member_id"]
    current = wait_for(lambda: raft_leader(cluster), timeout=30, what="an etcd raft leader")
    if current is not wanted:
        etcd_call(current, "/v3/maintenance/transfer-leadership", {"targetID": target})
    wait_for(lambda: raft_leader(cluster) is wanted, timeout=30, what=f"{wanted.name} the raft leader")


class ThreeMemberLan(TestLan):
    """The LAN with a three-member etcd (peers on the machine's loopback, clients on the bridge's address)."""

    def _etcd(self) -> None:
        self.etcd = EtcdCluster(self.directory / "etcd", size=3, client_hosts=(self.gateway, "127.0.0.1")).start()

    @property
    def store(self) -> str:
        assert self.etcd is not None
        return "etcd://" + ",".join(f"{self.gateway}:{m.client_port}" for m in self.etcd.members)


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[ThreeMemberLan]:
    with ThreeMemberLan(tmp_path / "lan", hosts_wanted=2, sidecar=True, leader_ttl=5) as built:  # the default
        yield built


def ready_pods(lan: TestLan, i: int, count: int) -> set[str] | None:
    listed = pods(lan, i)
    ok = len(listed) == count and all(p["phase"] == "Running" and p["ready"] == "True" and p["deleting"] == "False"
                                      for p in listed) and len({p["node"] for p in listed}) == 2
    return {p["name"] for p in listed} if ok else None


def test_losing_the_first_of_three_etcd_members_changes_nothing_for_users(lan: ThreeMemberLan,
                                                                          tmp_path: Path) -> None:
    assert lan.etcd is not None and lan.store.count(",") == 2
    server = tmp_path / "server.py"
    server.write_text(SERVER)
    manifest = tmp_path / "web.yaml"
    manifest.write_text(MANIFEST.format(python=sys.executable, server=server))
    names = {h.name for h in lan.hosts}
    wait_for(lambda: {n for n, node in lan.nodes(0).items() if node["ready"] == "True"} == names, timeout=60,
             what="2 Ready nodes", explain=lan.explain)
    applied = lan.kubectl(0, "apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr + lan.explain()
    every = wait_for(lambda: ready_pods(lan, 0, 6), timeout=120, what="6 Ready pods on 2 nodes",
                     explain=lambda: f"\n{pods(lan, 0)}{lan.explain()}")
    address = lan.kubectl(0, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
    for host in lan.hosts:
        wait_for(lambda i=host.index: answers(lan, i, address) == every, timeout=90,
                 what=f"all 6 replicas answering {host.name}", explain=lan.explain)

    assert lan.kubectl(1, "get", "configmaps").returncode == 0  # host1's kubeconfig and discovery, before
    leader = wait_for(lan.leader, timeout=30, what="one leader")
    load = lan.popen(1, "hey", "-z", "12s", "-c", "2", "-q", "25", "-t", "10", f"http://{address}/",
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    make_leader(lan.etcd, lan.etcd.members[0])
    time.sleep(3)
    lan.etcd.members[0].stop()  # SIGKILL: the member both agents name first, etcd's raft leader too
    killed_at = time.monotonic()

    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    out = lan.kubectl(1, "apply", "-f", str(config))
    assert out.returncode == 0, out.stderr + lan.explain()
    first_write = time.monotonic() - killed_at
    out = lan.kubectl(0, "scale", "deployment", "web", "--replicas", "4")
    assert out.returncode == 0, out.stderr + lan.explain()
    scaled = wait_for(lambda: ready_pods(lan, 0, 4), timeout=90, what="4 Ready pods after the scale",
                      explain=lambda: f"\n{pods(lan, 0)}{lan.explain()}")
    out = lan.kubectl(0, "get", "configmap", "after-the-loss", "-o", "jsonpath={.data.member}")
    assert out.stdout == "lost", out.stderr

    report = load.communicate(timeout=60)[0].decode()
    codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", report))
    assert codes.get("200") and set(codes) == {"200"}, report
    assert "Error distribution" not in report, report
    for host in lan.hosts:
        wait_for(lambda i=host.index: answers(lan, i, address) == scaled, timeout=90,
                 what=f"the 4 replicas answering {host.name}", explain=lan.explain)
        assert lan.healthz(host.index)[0] == 200
        assert lan.metric(host.index, "meshd_store_up") == 1
        assert lan.metric(host.index, "meshd_store_disconnects_total") == 0, lan.explain()
    after = wait_for(lan.leader, timeout=30, what="one leader")
    print(f"first etcd member SIGKILLed: a kubectl apply through the other agent {first_write:.2f}s later "
          f"succeeded; {codes.get('200')} requests through host1's sidecar meanwhile, none failed; leader "
          f"{leader} before, {after} after")

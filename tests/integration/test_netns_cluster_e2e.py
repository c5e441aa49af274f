"""Issue 15 end to end, on three test hosts (network namespaces on a bridge, tests/integration/netns_harness.py),
each its own `meshd agent` with the process driver and its node sidecar: host0 starts the cluster on etcd, host1
and host2 join by DNS-SD and a token. Then, with a capture on the bridge all along:
- a Deployment of 6 with pod anti-affinity lands 2 pods per node, bound by the leader's scheduler;
- curl from every host reaches every replica on every node, through the sidecars (other nodes' pods through
  their mesh gateways, over mutual TLS);
- killing a host (every process in its namespace) moves its pods to the others within the grace, with 0
  failed requests from a client looping through a sidecar;
- a host cut off (its veth down) loses its pods to the others; healed, it stops them: 6 pods, no duplicates;
- every TCP flow between the hosts was TLS, and so was every host's traffic to etcd (which speaks only TLS
  with client certificates: host0 is given etcd's files, host1 and host2 get them with the join)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.capture import capture, flows_between, summarise
from tests.integration.netns_harness import TestLan, usable, wait_for
from tests.integration.netns_support import NAMED_SERVER
from tests.integration.test_netns_join import JoinLan, etcd_flows_are_tls

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420),
              pytest.mark.skipif(bool(usable()), reason=usable() or "usable")]

SERVER = NAMED_SERVER

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 6
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm:
              topologyKey: kubernetes.io/hostname
              labelSelector: {{matchLabels: {{app: web}}}}
      containers:
      - name: web
        image: python
        command: ["{python}", "-u", "{server}"]
        env:
        - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
        - {{name: NODE_NAME, valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}}}
        ports: [{{containerPort: 8080, name: http}}]
        readinessProbe:
          httpGet: {{path: /, port: http}}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http}}]
"""


def pods(lan: TestLan, i: int) -> list[dict[str, str]]:
    """The web pods as host i's API lists them: name, node, phase, ready."""
    status, body = lan.api(i, "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")
    if status != 200:
        return []
    found = []
    for pod in body.get("items") or []:
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in (pod.get("status") or {}).get("conditions") or [])
        found.append({"name": pod["metadata"]["name"], "node": (pod.get("spec") or {}).get("nodeName") or "",
                      "phase": (pod.get("status") or {}).get("phase") or "", "ready": str(ready),
                      "deleting": str(bool(pod["metadata"].get("deletionTimestamp")))})
    return found


def spread(lan: TestLan, i: int, nodes: set[str]) -> Counter[str] | None:
    """Pods per node when there are exactly 6, all Running and Ready, on `nodes` only; else None."""
    listed = pods(lan, i)
    if len(listed) != 6 or any(p["phase"] != "Running" or p["ready"] != "True" or p["deleting"] == "True"
                               for p in listed):
        return None
    per_node = Counter(p["node"] for p in listed)
    return per_node if set(per_node) <= nodes else None


def servers_on(lan: TestLan, i: int, server: Path) -> int:
    """How many web server processes host i runs (its pods, as the process driver runs them)."""
    out = subprocess.run(["ip", "netns", "pids", lan.hosts[i].netns], capture_output=True, text=True).stdout
    count = 0
    for pid in out.split():
        try:
            if str(server).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                count += 1
        except OSError:
            continue
    return count


def answers(lan: TestLan, i: int, address: str, tries: int = 60) -> set[str]:
    """The pods that answered `tries` requests from host i to the Service."""
    script = (f"for n in $(seq {tries}); do curl -sS --max-time 5 http://{address}/; done")
    out = lan.run(i, "sh", "-c", script, timeout=120).stdout
    return set(re.findall(r"^(web-\S+) on host\d$", out, re.M))


def test_three_hosts_one_mesh(tmp_path: Path) -> None:
    server = tmp_path / "server.py"
    server.write_text(SERVER)
    manifest = tmp_path / "web.yaml"
    manifest.write_text(MANIFEST.format(python=sys.executable, server=server))
    with JoinLan(tmp_path / "lan", hosts_wanted=3, agents=False, sidecar=True, etcd_tls=True,
                 agent_args=("--pod-eviction-timeout", "2")) as lan:
        pcap = tmp_path / "mesh.pcap"
        with capture(lan.bridge, pcap, bpf="") as wire:
            lan.start_agent(0)
            found = wait_for(lambda: re.search(r"meshd agent --join ([a-z0-9]{6}\.[a-z0-9]{16})\n",
                                               lan.hosts[0].log.read_text()), timeout=30,
                             what="the printed token", explain=lan.explain)
            lan.join_token = found.group(1)
            for i in (1, 2):
                lan.start_agent(i, wait=False)
            for i in (1, 2):
                lan.wait_agent(i)
            names = {h.name for h in lan.hosts}
            wait_for(lambda: {n for n, node in lan.nodes(0).items() if node["ready"] == "True"} == names,
                     timeout=60, what="3 Ready nodes", explain=lan.explain)

            applied = lan.kubectl(0, "apply", "-f", str(manifest))
            assert applied.returncode == 0, applied.stderr + lan.explain()
            per_node = wait_for(lambda: spread(lan, 0, names), timeout=120,
                                what="6 Ready pods", explain=lambda: f"\n{pods(lan, 0)}{lan.explain()}")
            assert per_node == Counter({"host0": 2, "host1": 2, "host2": 2}), per_node
            for i in range(3):
                wait_for(lambda i=i: servers_on(lan, i, server) == 2, timeout=30,
                         what=f"2 web servers on host{i}", explain=lan.explain)

            address = lan.kubectl(0, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
            assert address, lan.explain()
            every = {p["name"] for p in pods(lan, 0)}
            for i in range(3):  # every replica on every node, from every host
                wait_for(lambda i=i: answers(lan, i, address) == every, timeout=90,
                         what=f"all 6 replicas answering host{i}", explain=lan.explain)

            # host2 dies under load from host0: its pods move, no request fails
            leader = lan.leader()
            victim = next(i for i in (2, 1) if lan.hosts[i].name != leader)
            survivors = names - {lan.hosts[victim].name}
            load = lan.popen(0, "hey", "-z", "20s", "-c", "4", "-q", "50", "-t", "10", f"http://{address}/",
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            time.sleep(3)
            killed_at = time.monotonic()
            lan.kill_host(victim)
            per_node = wait_for(lambda: spread(lan, 0, survivors), timeout=90, what="6 Ready pods on the survivors",
                                explain=lambda: f"\n{pods(lan, 0)}{lan.explain()}")
            moved = time.monotonic() - killed_at
            assert sorted(per_node.values()) == [3, 3], per_node
            report = load.communicate(timeout=60)[0].decode()
            print(f"host{victim} killed: its pods Running and Ready elsewhere after {moved:.1f}s\n{report}")
            codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", report))
            assert codes.get("200") and set(codes) == {"200"}, report
            assert "Error distribution" not in report, report

            # it comes back: nothing runs there twice
            lan.restart_host(victim)
            wait_for(lambda: spread(lan, 0, names), timeout=90, what="6 pods again",
                     explain=lambda: f"\n{pods(lan, 0)}{lan.explain()}")
            time.sleep(3)
            assert len(pods(lan, 0)) == 6

            # another host cut off: its pods move; healed, it stops them (no duplicates)
            cut = next(i for i in (1, 2) if lan.hosts[i].name != lan.leader())
            lan.cut(cut)
            others = names - {lan.hosts[cut].name}
            wait_for(lambda: spread(lan, 0, others), timeout=90, what="6 Ready pods off the cut host",
                     explain=lambda: f"\n{pods(lan, 0)}{lan.explain()}")
            lan.heal(cut)
            wait_for(lambda: servers_on(lan, cut, server) == 0, timeout=60,
                     what="the healed host stopping its replaced pods", explain=lan.explain)
            wait_for(lambda: spread(lan, 0, names), timeout=60, what="6 pods after healing",
                     explain=lambda: f"\n{pods(lan, 0)}{lan.explain()}")
            assert sum(servers_on(lan, i, server) for i in range(3)) == 6

        flows = wire.flows()
        between = flows_between(flows, [h.address for h in lan.hosts])
        kinds = summarise(between)
        print(f"flows between the hosts: {len(kinds['tls'])} TLS, {len(kinds['plaintext'])} plaintext, "
              f"{len(kinds['empty'])} without payload")
        assert kinds["tls"] and not kinds["plaintext"], kinds
        to_etcd = etcd_flows_are_tls(lan, flows, {h.address for h in lan.hosts})
        print(f"flows to etcd: {len(to_etcd)}, all TLS")

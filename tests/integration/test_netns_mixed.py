"""One mesh over two drivers (issue 15's test hosts): two network-namespace hosts running the process driver and
the machine's own node running the Docker driver, each with its node sidecar, on one Debian etcd. The cluster has
one Service range (given to its first agent, kept in the store): a Deployment spread 2 per node answers through its
Service's one address and its name from every node: from each namespace host (curl), from the machine itself, and
from inside a container on the Docker node (`docker exec`); every replica on every node answers each of them,
other nodes' replicas through their mesh gateways over mutual TLS."""

from __future__ import annotations

import ipaddress
import json
import re
import statistics
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.netns_harness import TestLan, usable, wait_for
from tests.integration.netns_support import NAMED_SERVER, pick_subnet, sh

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.timeout(420),
              pytest.mark.skipif(bool(usable()), reason=usable() or "usable")]

SERVER = NAMED_SERVER

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        labelSelector: {matchLabels: {app: web}}
      containers:
      - name: web
        image: meshd/python:3.11
        imagePullPolicy: Never
        command: ["/usr/bin/python3", "-u", "-c", SERVER]
        env:
        - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
        ports: [{containerPort: 8080, name: http}]
        readinessProbe:
          httpGet: {path: /, port: http}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"""
NAME = "web.default.svc.cluster.local"
ANSWER = re.compile(r"^(web-\S+) on (host\d|machine)(?:\t(\S+))?$", re.M)  # FETCH adds the seconds it took

FETCH = """\
import sys, time, urllib.request
for _ in range(int(sys.argv[2])):
    try:
        started = time.perf_counter()
        body = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().strip()
        print(f"{body}\t{time.perf_counter() - started:.6f}", flush=True)
    except Exception as error:
        print("failed:", error, flush=True)
"""


def web_pods(lan: TestLan) -> list[dict[str, str]]:
    out = lan.kubectl(0, "get", "pods", "-l", "app=web", "-o",
                      "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.phase} "
                      "{.status.conditions[?(@.type=='Ready')].status}{'\\n'}{end}")
    rows = [line.split() for line in out.stdout.splitlines() if line.strip()]
    return [dict(zip(("name", "node", "phase", "ready"), row, strict=False)) for row in rows]


def spread(lan: TestLan) -> Counter[str] | None:
    """Pods per node once all 6 run and are Ready."""
    pods = web_pods(lan)
    if len(pods) != 6 or any(p.get("phase") != "Running" or p.get("ready") != "True" for p in pods):
        return None
    return Counter(p["node"] for p in pods)


def answered(out: str) -> set[str]:
    return {name for name, _, _ in ANSWER.findall(out)}


def from_host(lan: TestLan, i: int, url: str, tries: int = 40) -> set[str]:
    """The replicas answering `tries` curls to `url` from test host i (a namespace, or the machine itself)."""
    script = f"for n in $(seq {tries}); do curl -sS --max-time 5 {url}; echo; done"
    return answered(lan.run(i, "sh", "-c", script, timeout=240).stdout)


def diagnose(lan: TestLan, i: int, url: str) -> str:
    """What curl and the resolver say on host i, then the agents' logs."""
    out = lan.run(i, "sh", "-c", f"cat /etc/resolv.conf; getent hosts {NAME}; "
                  f"for n in 1 2 3 4 5 6; do curl -sS --max-time 5 {url}; echo; done", timeout=60)
    return f"\n{out.stdout}{out.stderr}{lan.explain()}"


def from_container(container: str, url: str, tries: int = 40) -> set[str]:
    """The replicas answering `tries` requests to `url` from inside a container on the Docker node."""
    return answered(fetch_in(container, url, tries))


def fetch_in(container: str, url: str, tries: int) -> str:
    out = subprocess.run(["docker", "exec", container, "/usr/bin/python3", "-c", FETCH, url, str(tries)],
                         capture_output=True, text=True, timeout=240, check=False)
    return out.stdout


def median_ms_by_node(out: str) -> dict[str, float]:
    """Median time of a request (a new connection each) by the node of the replica that answered, ms."""
    times: dict[str, list[float]] = {}
    for _, node, seconds in ANSWER.findall(out):
        times.setdefault(node, []).append(float(seconds) * 1000)
    return {node: round(statistics.median(values), 2) for node, values in sorted(times.items())}


def gateway_counts(lan: TestLan, i: int) -> dict[str, float]:
    """Host i's node sidecar's mesh counters: connections its gateway let through to a pod, connections it made
    to other nodes' gateways (its metrics address as its agent lists it for Prometheus)."""
    status, groups = lan.api(i, "/v1/prometheus/targets")
    assert status == 200, groups
    [where] = [t for g in groups if g["labels"].get("meshd_component") == "sidecar" for t in g["targets"]]
    text = lan.run(i, "curl", "-sf", "-m", "5", f"http://{where}/metrics", check=True).stdout

    def value(pattern: str) -> float:
        found = re.search(rf"^{pattern} (\S+)$", text, re.M)
        return float(found.group(1)) if found else 0.0
    return {"accepted": value("meshd_sidecar_mesh_gateway_connections_total"),
            "outbound": value(r'meshd_sidecar_mesh_outbound_connections_total\{result="made"\}')}


def app_container(agent_id: str) -> str:
    """The id of a web container the machine's agent runs on the Docker engine."""
    out = subprocess.run(["docker", "ps", "-q", "--filter", f"label=io.meshd.agent={agent_id}",
                          "--filter", "label=io.meshd.container=web"], capture_output=True, text=True, check=True)
    return out.stdout.split()[0] if out.stdout.split() else ""


def test_one_service_address_on_process_and_docker_nodes(
        tmp_path: Path, agent_id: str, remove_agent_containers: Callable[[str], int]) -> None:
    service_range = pick_subnet(sh("ip", "-4", "route", "show", "table", "all").stdout.splitlines())
    manifest = tmp_path / "web.yaml"
    manifest.write_text(MANIFEST.replace("SERVER", json.dumps(SERVER)))  # the script as one YAML string
    try:
        with TestLan(tmp_path / "lan", hosts_wanted=2, sidecar=True,
                     agent_args=("--service-cluster-ip-range", str(service_range))) as lan:
            machine = lan.start_machine(agent_id, sidecar=True)
            names = {"host0", "host1", "machine"}
            wait_for(lambda: {n for n, v in lan.nodes(0).items() if v["ready"] == "True"} == names, timeout=90,
                     what="3 Ready nodes", explain=lan.explain)

            applied = lan.kubectl(0, "apply", "-f", str(manifest))
            assert applied.returncode == 0, applied.stderr + lan.explain()
            per_node = wait_for(lambda: spread(lan), timeout=180, what="6 Running and Ready pods",
                                explain=lambda: f"\n{web_pods(lan)}{lan.explain()}")
            assert per_node == Counter({"host0": 2, "host1": 2, "machine": 2}), per_node

            address = lan.kubectl(0, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
            assert ipaddress.IPv4Address(address) in service_range, (address, service_range)
            for i in (1, machine.index):  # one address, whichever agent is asked
                got = lan.kubectl(i, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
                assert got == address, (lan.hosts[i].name, got, address)
            every = {p["name"] for p in web_pods(lan)}

            for i in (0, 1):  # a namespace host (process driver): by address and by name (its agent's DNS)
                for url in (f"http://{address}/", f"http://{NAME}/"):
                    wait_for(lambda i=i, url=url: from_host(lan, i, url) == every, timeout=120,
                             what=f"all 6 replicas answering {url} from host{i}",
                             explain=lambda i=i, url=url: diagnose(lan, i, url))
            wait_for(lambda: from_host(lan, machine.index, f"http://{address}/") == every, timeout=120,
                     what="all 6 replicas answering the Service address from the machine", explain=lan.explain)
            container = wait_for(lambda: app_container(agent_id), timeout=30, what="a web container on Docker")
            for url in (f"http://{address}/", f"http://{NAME}/"):
                wait_for(lambda url=url: from_container(container, url) == every, timeout=120,
                         what=f"all 6 replicas answering {url} inside a container on the Docker node",
                         explain=lan.explain)
            # the other nodes' replicas came through the mesh gateways (mutual TLS), both ways across drivers
            counts = {lan.hosts[i].name: gateway_counts(lan, i) for i in (0, machine.index)}
            assert all(c["accepted"] > 0 and c["outbound"] > 0 for c in counts.values()), counts
            print(f"Service range {service_range}, web at {address}: 6 replicas (2 per node) answer from host0, "
                  f"host1, the machine and a container on it; mesh counters {counts}")
            # a figure, not a check: the local replicas (one sidecar) against other nodes' (two sidecars and
            # mutual TLS across the bridge), from either kind of node
            print("median ms by serving node, 300 requests from a container on the Docker node:",
                  median_ms_by_node(fetch_in(container, f"http://{address}/", 300)), "; from host0:",
                  median_ms_by_node(lan.run(0, "/usr/bin/python3", "-c", FETCH, f"http://{address}/", "300",
                                            timeout=240).stdout))
    finally:
        remove_agent_containers(agent_id)
        _remove_bridge_addresses(service_range)


def _remove_bridge_addresses(network: ipaddress.IPv4Network, bridge: str = "meshd0") -> None:
    """The Service addresses the killed Docker node left on the shared bridge (this test's range only)."""
    out = sh("ip", "-4", "-o", "addr", "show", "dev", bridge, check=False).stdout
    for found in re.findall(r"inet (\S+)/32", out):
        if ipaddress.IPv4Address(found) in network:
            sh("ip", "addr", "del", f"{found}/32", "dev", bridge, check=False)

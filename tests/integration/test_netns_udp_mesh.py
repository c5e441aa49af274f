"""A UDP Service across nodes, on two test hosts (network namespaces on a bridge, each its own `meshd agent` with
the process driver and its node sidecar, one etcd): the Service's replicas are dnsmasq DNS servers pinned to
host1 (nodeSelector), and `dig @<service address>` from host0 is answered by both of them, through host0's
sidecar and host1's mesh gateway (one mutual-TLS stream per client flow). A capture on the bridge all along sees
no DNS between the hosts: no UDP datagram from one host to the other, the query's name in no frame, and every TCP
flow between them TLS, the gateway's port among them."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.capture import capture, flows_between, summarise
from tests.integration.netns_harness import TestLan, usable, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300),
              pytest.mark.skipif(bool(usable()), reason=usable() or "usable"),
              pytest.mark.skipif(not all(shutil.which(t) for t in ("tcpdump", "dnsmasq", "dig")),
                                 reason="needs tcpdump, dnsmasq and dig")]

MESH_PORT = 4143
MDNS_PORT = 5353  # zeroconf answers a query from port 5353 by unicast too: the cluster's DNS-SD, not a Service's DNS
QNAME = b"\x03pod\x01x\x04test\x00"  # pod.x.test as it travels in a DNS message
MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: dns}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: dns}}}}
  template:
    metadata: {{labels: {{app: dns}}}}
    spec:
      nodeSelector: {{kubernetes.io/hostname: {node}}}
      terminationGracePeriodSeconds: 1
      containers:
      - name: dnsmasq
        image: dnsmasq
        command: ["sh", "-c", "exec {dnsmasq} --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --pid-file=
          --user=root --port 5353 --listen-address $POD_IP --bind-interfaces --address=/x.test/10.9.8.7
          --txt-record=pod.x.test,$POD_NAME"]
        env:
        - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
        ports: [{{containerPort: 5353, name: dns, protocol: UDP}}]
---
apiVersion: v1
kind: Service
metadata: {{name: dns}}
spec:
  selector: {{app: dns}}
  ports: [{{name: dns, port: 53, targetPort: dns, protocol: UDP}}]
"""


@pytest.fixture(scope="module")
def lan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestLan]:
    with TestLan(tmp_path_factory.mktemp("lan"), hosts_wanted=2, sidecar=True) as built:
        yield built


def dns_pods(lan: TestLan) -> dict[str, str]:
    """The Ready dns pods: name -> node."""
    status, body = lan.api(0, "/api/v1/namespaces/default/pods?labelSelector=app%3Ddns")
    if status != 200:
        return {}
    return {p["metadata"]["name"]: (p.get("spec") or {}).get("nodeName", "") for p in body.get("items") or []
            if any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in (p.get("status") or {}).get("conditions") or [])}


def dig(lan: TestLan, i: int, address: str, tries: int = 1) -> list[str]:
    """The pod names that answered `tries` TXT queries from host i (each dig a new flow)."""
    script = (f"for n in $(seq {tries}); do dig +short +time=3 +tries=1 @{address} -p 53 TXT pod.x.test; done")
    out = lan.run(i, "sh", "-c", script, timeout=30 + 5 * tries).stdout
    return re.findall(r'^"(dns-\S+)"$', out, re.M)


def test_dig_on_one_host_is_answered_by_dns_pods_of_the_other_and_no_dns_crosses_the_bridge(
        lan: TestLan, tmp_path: Path) -> None:
    client, server = lan.hosts
    names = {h.name for h in lan.hosts}
    wait_for(lambda: {n for n, node in lan.nodes(0).items() if node["ready"] == "True"} == names, timeout=90,
             what="2 Ready nodes", explain=lan.explain)
    manifest = tmp_path / "dns.yaml"
    manifest.write_text(MANIFEST.format(node=server.name, dnsmasq=shutil.which("dnsmasq")))
    applied = lan.kubectl(0, "apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr + lan.explain()
    pods = wait_for(lambda: (found := dns_pods(lan)) and len(found) == 2 and found, timeout=120,
                    what="2 Ready dns pods", explain=lambda: f"\n{lan.kubectl(0, 'get', 'pods', '-o', 'wide').stdout}"
                                                             f"{lan.explain()}")
    assert set(pods.values()) == {server.name}, pods
    address = lan.kubectl(0, "get", "service", "dns", "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
    assert address, lan.explain()

    with capture(lan.bridge, tmp_path / "bridge.pcap", bpf="") as wire:
        wait_for(lambda: dig(lan, client.index, address), timeout=90,
                 what=f"dig @{address} on {client.name} answered", explain=lan.explain)
        answered = dig(lan, client.index, address, tries=20)
        assert len(answered) == 20, answered
        assert set(answered) == set(pods), answered  # flows spread over both replicas on the other host
    hosts = [h.address for h in lan.hosts]
    datagrams = wire.datagrams()
    between = [d for d in datagrams if d.src[0] in hosts and d.dst[0] in hosts
               and MDNS_PORT not in (d.src[1], d.dst[1])]  # (cluster discovery over mDNS is the LAN's by design)
    assert not between, [f"{d.src} -> {d.dst} {d.payload[:40]!r}" for d in between]
    assert not [d for d in datagrams if QNAME in d.payload], "a DNS query crossed the bridge in clear"
    flows = flows_between(wire.flows(), hosts)
    print("\n".join(f"{kind}: {line}" for kind, lines in summarise(flows).items() for line in lines))
    assert flows and {f.kind for f in flows} == {"tls"}, summarise(flows)
    assert any(f.server == (server.address, MESH_PORT) for f in flows), summarise(flows)
    assert not any(QNAME in f.sent or QNAME in f.received for f in flows)
    assert not [s for s in wire.segments() if QNAME in s.payload]

"""Mutual TLS between test hosts (network namespaces on a bridge, each its own agent and node sidecar): a pod
on the leader's host answers curl from the other host's namespace through both sidecars, and a capture on the
bridge sees every host-to-host connection as TLS (the mesh gateway's port among them), never the request or the
answer in clear. The pod's Pod object is bound to its node, whose agent writes its status to the store, where the
other node's sidecar finds the endpoint."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.capture import capture, flows_between, summarise
from tests.integration.netns_harness import TestLan, usable, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(usable()), reason=usable() or "usable"),
              pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")]

MESH_PORT = 4143
POD = """\
apiVersion: v1
kind: Pod
metadata: {{name: web, labels: {{app: web}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: python
    command: ["sh", "-c", "exec {python} -u -m http.server --directory {site} --bind $POD_IP 8080"]
    ports: [{{containerPort: 8080, name: http}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http}}]
"""


@pytest.fixture(scope="module")
def lan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestLan]:
    with TestLan(tmp_path_factory.mktemp("lan"), hosts_wanted=2, sidecar=True) as built:
        yield built


def test_only_tls_crosses_the_bridge_between_nodes(lan: TestLan, tmp_path: Path) -> None:
    leader = str(wait_for(lan.leader, timeout=90, what="one leader", explain=lan.explain))
    server = next(h for h in lan.hosts if h.name == leader)  # the leader runs the pod (until pods are placed)
    client = next(h for h in lan.hosts if h is not server)
    manifest, site = tmp_path / "web.yaml", tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(f"secret-answer-from-{server.name}\n")
    manifest.write_text(POD.format(python=sys.executable, site=site, node=server.name))
    out = lan.kubectl(server.index, "apply", "-f", str(manifest))
    assert out.returncode == 0, out.stderr

    def running() -> dict | None:
        status, body = lan.api(server.index, "/api/v1/namespaces/default/pods/web")
        ready = status == 200 and any(c.get("type") == "Ready" and c.get("status") == "True"
                                      for c in body.get("status", {}).get("conditions") or [])
        return body if ready and body["status"].get("podIP") else None

    pod = wait_for(running, timeout=90, what="the pod running on the leader", explain=lan.explain)
    assert pod["spec"]["nodeName"] == server.name  # bound there: its node's agent writes its status to the store

    def cluster_ip() -> str | None:
        out = lan.kubectl(client.index, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")
        return out.stdout.strip() or None

    address = str(wait_for(cluster_ip, timeout=30, what="the Service on the client's node"))

    def answered() -> bool:
        got = lan.run(client.index, "curl", "-sS", "-m", "5", f"http://{address}/", timeout=15)
        return f"secret-answer-from-{server.name}" in got.stdout

    # from before the first request: the sidecar's connection to the gateway (pooled) is in the capture whole
    with capture(lan.bridge, tmp_path / "bridge.pcap") as running_:
        wait_for(answered, timeout=90, what="curl on the client's node reaching the pod", explain=lan.explain)
        for _ in range(5):
            got = lan.run(client.index, "curl", "-sS", "-m", "5", "-H", "Connection: close", f"http://{address}/",
                          timeout=15)
            assert f"secret-answer-from-{server.name}" in got.stdout, got
    flows = running_.flows()
    summary = summarise(flows)
    between = flows_between(flows, [h.address for h in lan.hosts])
    print("\n".join(f"{kind}: {line}" for kind, lines in summarise(between).items() for line in lines))
    assert between, summary
    assert {f.kind for f in between} == {"tls"}, json.dumps(summary, indent=1)
    assert any(f.server == (server.address, MESH_PORT) for f in between), summary
    for flow in between:
        assert b"secret-answer" not in flow.received and b"GET / HTTP" not in flow.sent

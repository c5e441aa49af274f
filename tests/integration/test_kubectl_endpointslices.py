"""`discovery.k8s.io/v1` EndpointSlices, which kubectl (1.33+) and the clients read a Service's endpoints from:
`kubectl describe service` shows its Endpoints line from them, `kubectl get endpointslices` its columns, and the
Python client lists and watches them typed. Real agent (process driver), real kubectl, the `kubernetes` client."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

from tests.integration import test_kubectl
from tests.integration.test_kubectl_writes import write

cluster = test_kubectl.cluster

pytestmark = [pytest.mark.slow]

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: python
        command: ["sh", "-c", "exec PYTHON -m http.server --bind $POD_IP 8080"]
        ports: [{containerPort: 8080, name: http}]
        readinessProbe: {tcpSocket: {port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}, {name: dns, port: 53, targetPort: 8053, protocol: UDP}]
""".replace("PYTHON", sys.executable)


async def pod_ips(cluster) -> list[str]:
    code, out, err = await cluster.kubectl("get", "pods", "-l", "app=web", "-o", "json")
    assert code == 0, err
    return sorted(p["status"]["podIP"] for p in json.loads(out)["items"])


async def test_kubectl_describes_a_services_endpoints_from_its_slices(cluster):
    code, out, err = await cluster.kubectl("api-resources", "--api-group=discovery.k8s.io", "--no-headers")
    assert code == 0 and out.split() == ["endpointslices", "discovery.k8s.io/v1", "true", "EndpointSlice"], out
    code, out, err = await cluster.kubectl("explain", "endpointslices.endpoints.conditions")
    assert code == 0 and "FIELD: conditions <EndpointConditions>" in out and "ready\t<boolean>" in out, (out, err)
    code, out, err = await cluster.kubectl("apply", "-f", await write(cluster, "web.yaml", APP))
    assert code == 0, err
    code, out, err = await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    assert code == 0, (out, err)
    ips = await pod_ips(cluster)

    code, out, err = await cluster.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=web",
                                           "-o", "json")
    assert code == 0, err
    (slice_,) = json.loads(out)["items"]
    assert slice_["metadata"]["name"].startswith("web-") and slice_["addressType"] == "IPv4"
    assert slice_["metadata"]["ownerReferences"][0]["kind"] == "Service"
    assert sorted(e["addresses"][0] for e in slice_["endpoints"]) == ips
    assert all(e["conditions"]["ready"] and e["targetRef"]["kind"] == "Pod" for e in slice_["endpoints"])
    assert sorted((p["name"], p["port"], p["protocol"]) for p in slice_["ports"]) == [
        ("dns", 8053, "UDP"), ("http", 8080, "TCP")]

    code, out, err = await cluster.kubectl("get", "endpointslices")
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert row.split()[1:4] == ["IPv4", "8053,8080", ",".join(e["addresses"][0] for e in slice_["endpoints"])]

    code, out, err = await cluster.kubectl("describe", "service", "web")
    assert code == 0, err
    lines = [line.split(None, 1)[1] for line in out.splitlines() if line.startswith("Endpoints:")]
    assert sorted(lines[0].split(",")) == sorted(f"{ip}:8080" for ip in ips), out  # the http port's
    described = " ".join(out.split())  # and the API server's defaults, as Kubernetes shows them
    assert "Session Affinity: None" in described and "IP Families: IPv4" in described, out
    assert "IP Family Policy: SingleStack" in described and "Internal Traffic Policy: Cluster" in described, out


async def test_the_python_client_lists_and_watches_endpoint_slices(cluster):
    kubernetes = pytest.importorskip("kubernetes")
    code, out, err = await cluster.kubectl("apply", "-f", await write(cluster, "web.yaml", APP))
    assert code == 0, err
    code, out, err = await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    assert code == 0, (out, err)

    def list_then_watch_a_scale_up() -> list[int]:
        client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        discovery = kubernetes.client.DiscoveryV1Api(client)
        listed = discovery.list_namespaced_endpoint_slice("default", label_selector="kubernetes.io/service-name=web")
        counts = [len(listed.items[0].endpoints)]
        apps = kubernetes.client.AppsV1Api(client)
        apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})
        watch = kubernetes.watch.Watch()
        for event in watch.stream(discovery.list_namespaced_endpoint_slice, "default",
                                  label_selector="kubernetes.io/service-name=web", timeout_seconds=60):
            ready = [e for e in event["object"].endpoints or [] if e.conditions.ready]
            counts.append(len(ready))
            if len(ready) == 3:
                watch.stop()
        return counts

    counts = await asyncio.to_thread(list_then_watch_a_scale_up)
    assert counts[0] == 2 and counts[-1] == 3, counts

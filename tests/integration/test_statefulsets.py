"""StatefulSets and DaemonSets on the real Docker engine, driven by the real kubectl, with dig against the agent's
DNS and busybox's resolver inside a pod: stable names, ordered start, per-pod DNS, claims that outlive pods,
rolling updates with a partition, and a DaemonSet that rolls."""

from __future__ import annotations

import asyncio
import json
import shutil
import time

import pytest

from tests.integration.agent_harness import agent_options, started_agent
from tests.integration.test_kubectl import Cluster, write_kubeconfig

pytestmark = [pytest.mark.slow, pytest.mark.docker,
              pytest.mark.skipif(shutil.which("kubectl") is None or shutil.which("dig") is None,
                                 reason="kubectl and dig are needed")]

WEB = """\
apiVersion: v1
kind: Service
metadata: {name: nginx}
spec:
  clusterIP: None
  selector: {app: nginx}
  ports: [{port: 80, name: web}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: nginx
  replicas: 3
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: meshd/busybox:latest
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "hostname > /tmp/index.html && exec httpd -f -p 80 -h /tmp"]
        ports: [{containerPort: 80, name: web}]
        volumeMounts: [{name: data, mountPath: /data}]
        readinessProbe:
          httpGet: {path: /, port: 80}
          periodSeconds: 1
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 16Mi}}
"""

DAEMON = """\
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: logger}
spec:
  selector: {matchLabels: {app: logger}}
  template:
    metadata: {labels: {app: logger}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: logger
        image: meshd/busybox:latest
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "touch /tmp/ok && exec sleep 3600"]
        readinessProbe:
          exec: {command: ["cat", "/tmp/ok"]}
          periodSeconds: 1
"""


@pytest.fixture
async def docker_cluster(tmp_path, agent_id, monkeypatch, busybox_image):
    options = agent_options(tmp_path, agent_id, driver="docker")
    agent = await started_agent(options)
    monkeypatch.setenv("MESHD_TOKEN", agent.token)
    api = f"http://{options.api}"
    kubeconfig = await write_kubeconfig(api, options.state_dir, tmp_path / "kubeconfig")
    cluster = Cluster(api, kubeconfig, tmp_path)
    cluster.agent = agent  # type: ignore[attr-defined]
    cluster.dns_port = int(options.dns.rsplit(":", 1)[1])  # type: ignore[attr-defined]
    yield cluster
    await agent.close(stop_pods=True)


async def ok(cluster: Cluster, *args: str) -> str:
    code, out, err = await cluster.kubectl(*args)
    assert code == 0, (args, out, err)
    return out


async def apply(cluster: Cluster, text: str) -> None:
    path = cluster.cache / f"manifest-{time.monotonic_ns()}.yaml"
    path.write_text(text)
    await ok(cluster, "apply", "-f", str(path))


async def dig(cluster: Cluster, *args: str) -> list[str]:
    proc = await asyncio.create_subprocess_exec(
        "dig", "+short", "+time=2", "+tries=3", "-p", str(cluster.dns_port), "@127.0.0.1",  # type: ignore[attr-defined]
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return sorted(out.decode().split("\n"))[1:] if out else []


async def pods(cluster: Cluster, selector: str) -> list[dict]:
    return json.loads(await ok(cluster, "get", "pods", "-l", selector, "-o", "json"))["items"]


async def until(check, *, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.5)
    raise AssertionError(f"not met within {timeout}s (last: {value!r})")


async def test_a_statefulset_has_stable_names_ordered_start_per_pod_dns_claims_and_partitioned_updates(
        docker_cluster):
    cluster = docker_cluster
    agent = cluster.agent
    await apply(cluster, WEB)
    out = await ok(cluster, "rollout", "status", "sts/web", "--timeout=120s")
    assert "3 new pods have been updated" in out.splitlines()[-1]

    # stable names, each pod started once the one before it was Running and Ready
    workers = {name: w for (_, name), w in agent.controller.pods.items()}
    assert sorted(workers) == ["web-0", "web-1", "web-2"]
    for before, after in (("web-0", "web-1"), ("web-1", "web-2")):
        assert workers[after].created >= workers[before].ready_since, (before, after)
    items = {p["metadata"]["name"]: p for p in await pods(cluster, "app=nginx")}
    for name, pod in items.items():
        labels = pod["metadata"]["labels"]
        assert labels["statefulset.kubernetes.io/pod-name"] == name
        assert labels["apps.kubernetes.io/pod-index"] == name[-1]
        assert labels["controller-revision-hash"].startswith("web-")
        assert pod["spec"]["hostname"] == name and pod["spec"]["subdomain"] == "nginx"
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
        assert pod["spec"]["volumes"][0]["persistentVolumeClaim"] == {"claimName": f"data-{name}"}
    address = {name: pod["status"]["podIP"] for name, pod in items.items()}
    assert (await ok(cluster, "get", "sts", "web", "--no-headers")).split()[:2] == ["web", "3/3"]
    claims = (await ok(cluster, "get", "pvc", "-o", "name")).split()
    assert claims == [f"persistentvolumeclaim/data-web-{i}" for i in range(3)]

    # per-pod DNS, SRV naming the hostnames, PTR of a pod address; from the host with dig
    assert await dig(cluster, "web-1.nginx.default.svc.cluster.local") == [address["web-1"]]
    assert await dig(cluster, "-x", address["web-2"]) == ["web-2.nginx.default.svc.cluster.local."]
    srv = await dig(cluster, "nginx.default.svc.cluster.local", "SRV")
    assert sorted(r.split()[-1] for r in srv) == [f"web-{i}.nginx.default.svc.cluster.local." for i in range(3)]
    # and inside a pod: busybox's nslookup, and the search path (web-2.nginx) through its resolver
    out = await ok(cluster, "exec", "web-0", "--", "nslookup", "web-1.nginx.default.svc.cluster.local")
    assert address["web-1"] in out
    assert await ok(cluster, "exec", "web-0", "--", "wget", "-qO-", "http://web-2.nginx/") == "web-2\n"
    assert (await ok(cluster, "exec", "web-1", "--", "hostname")).strip() == "web-1"

    # a deleted pod comes back with its name (and its claim)
    await ok(cluster, "exec", "web-1", "--", "sh", "-c", "echo kept > /data/file")
    old_uid = items["web-1"]["metadata"]["uid"]
    await ok(cluster, "delete", "pod", "web-1")

    async def back() -> bool:
        found = {p["metadata"]["name"]: p for p in await pods(cluster, "app=nginx")}
        pod = found.get("web-1")
        return pod is not None and pod["metadata"]["uid"] != old_uid and all(
            c["ready"] for c in pod["status"]["containerStatuses"])

    await until(back)
    assert await dig(cluster, "web-1.nginx.default.svc.cluster.local")
    # the new web-1 mounts the same claim: the data is still there
    assert await ok(cluster, "exec", "web-1", "--", "cat", "/data/file") == "kept\n"

    # a rolling update with a partition: only ordinals >= 2 move
    before = {p["metadata"]["name"]: p["metadata"]["labels"]["controller-revision-hash"]
              for p in await pods(cluster, "app=nginx")}
    await ok(cluster, "patch", "sts", "web", "-p", json.dumps({"spec": {
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
        "template": {"metadata": {"annotations": {"version": "2"}}}}}))
    out = await ok(cluster, "rollout", "status", "sts/web", "--timeout=120s")
    assert "partitioned roll out complete: 1 new pods have been updated" in out
    after = {p["metadata"]["name"]: p["metadata"]["labels"]["controller-revision-hash"]
             for p in await pods(cluster, "app=nginx")}
    status = json.loads(await ok(cluster, "get", "sts", "web", "-o", "json"))["status"]
    assert after["web-0"] == before["web-0"] and after["web-1"] == before["web-1"]
    assert after["web-2"] == status["updateRevision"] != before["web-2"]
    assert (status["currentRevision"], status["currentReplicas"], status["updatedReplicas"]) == (
        before["web-0"], 2, 1)
    # partition 0: the rest roll, highest first
    await ok(cluster, "patch", "sts", "web", "-p", '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}')
    await ok(cluster, "rollout", "status", "sts/web", "--timeout=120s")
    status = json.loads(await ok(cluster, "get", "sts", "web", "-o", "json"))["status"]
    assert status["currentRevision"] == status["updateRevision"] and status["updatedReplicas"] == 3
    events = [e["message"] for e in json.loads(await ok(cluster, "get", "events", "-o", "json"))["items"]
              if e["involvedObject"]["name"] == "web" and e["reason"] == "SuccessfulDelete"]
    assert [m.split()[2] for m in events][-3:] == ["web-2", "web-1", "web-0"]

    # scale down: the highest ordinals go, the claims stay; kubectl scale goes through the scale subresource
    await ok(cluster, "scale", "sts", "web", "--replicas=1")
    await until(lambda: _names(cluster, ["web-0"]))
    await ok(cluster, "delete", "sts", "web")
    await until(lambda: _names(cluster, []))
    claims = (await ok(cluster, "get", "pvc", "-o", "name")).split()
    assert len(claims) == 3, claims
    # applied again, the StatefulSet's web-1 finds its claim, and the data, where it was
    await apply(cluster, WEB)
    await ok(cluster, "rollout", "status", "sts/web", "--timeout=120s")
    assert await ok(cluster, "exec", "web-1", "--", "cat", "/data/file") == "kept\n"


async def _names(cluster: Cluster, wanted: list[str]) -> bool:
    return sorted(p["metadata"]["name"] for p in await pods(cluster, "app=nginx")) == wanted


async def test_a_daemonset_runs_one_pod_and_rolls(docker_cluster):
    cluster = docker_cluster
    await apply(cluster, DAEMON)
    out = await ok(cluster, "rollout", "status", "ds/logger", "--timeout=120s")
    assert out.splitlines()[-1] == 'daemon set "logger" successfully rolled out'
    header, row = (await ok(cluster, "get", "ds", "logger")).splitlines()
    assert header.split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE", "SELECTOR",
                              "AGE"]
    assert row.split()[:7] == ["logger", "1", "1", "1", "1", "1", "<none>"]
    (first,) = await pods(cluster, "app=logger")
    assert first["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"

    await ok(cluster, "set", "env", "ds/logger", "VERSION=2")
    await ok(cluster, "rollout", "status", "ds/logger", "--timeout=120s")

    async def rolled() -> list[dict] | None:
        found = await pods(cluster, "app=logger")
        return found if len(found) == 1 and found[0]["metadata"]["name"] != first["metadata"]["name"] else None

    (second,) = await until(rolled)
    assert second["metadata"]["labels"]["pod-template-generation"] == "2"
    assert second["metadata"]["labels"]["controller-revision-hash"] != \
        first["metadata"]["labels"]["controller-revision-hash"]
    await ok(cluster, "delete", "ds", "logger")
    await until(lambda: _empty(cluster))


async def _empty(cluster: Cluster) -> bool:
    return not await pods(cluster, "app=logger")

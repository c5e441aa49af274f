"""The agent's HTTP API over a real socket: Kubernetes-shaped objects, apply errors, the endpoint watch stream,
blocking reads, and requests that must never hurt the agent."""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import pytest

from tests.integration.agent_harness import agent_options, api_headers, started_agent

pytestmark = [pytest.mark.docker]

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: %s}
spec:
  selector: {app: %s}
  ports: [{name: http, port: 80, targetPort: 8080}]
"""


@pytest.fixture
async def api(tmp_path, agent_id, pause_image):
    agent = await started_agent(agent_options(tmp_path, agent_id))
    async with aiohttp.ClientSession(f"http://{agent.options.api}", headers=api_headers(agent)) as session:
        yield agent, session
    await agent.close(stop_pods=True)


async def test_apply_errors_name_the_field_and_change_nothing(api):
    agent, http = api
    broken = SERVICE % ("web", "web") + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: many}\n"
    async with http.post("/v1/apply", data=broken) as reply:
        assert reply.status == 422
        message = (await reply.json())["message"]
    assert "document 2" in message and "spec.replicas" in message
    async with http.get("/api/v1/namespaces/default/services") as reply:
        assert (await reply.json())["items"] == []


async def test_services_and_endpoints_are_kubernetes_shaped(api):
    agent, http = api
    async with http.post("/v1/apply", data=SERVICE % ("web", "web")) as reply:
        assert (await reply.json())["results"][0]["action"] == "created"
    async with http.get("/api/v1/namespaces/default/services/web") as reply:
        service = await reply.json()
    assert service["kind"] == "Service" and service["spec"]["clusterIP"].startswith("10.213.")
    async with http.get("/api/v1/namespaces/default/endpoints") as reply:
        listing = await reply.json()
    assert listing["kind"] == "EndpointsList" and listing["items"][0]["kind"] == "Endpoints"
    async with http.get("/api/v1/namespaces/default/services/nope") as reply:
        assert reply.status == 404


async def test_the_endpoint_watch_starts_with_the_state_then_streams_changes(api):
    agent, http = api
    await (await http.post("/v1/apply", data=SERVICE % ("one", "one"))).release()
    async with http.get("/v1/watch/endpoints?sidecar=test") as stream:
        first = json.loads(await stream.content.readline())
        synced = json.loads(await stream.content.readline())
        assert first["type"] == "Reset" and first["service"]["name"] == "one" and synced == {"type": "Synced"}
        await (await http.post("/v1/apply", data=SERVICE % ("two", "two"))).release()
        update = json.loads(await asyncio.wait_for(stream.content.readline(), 5))
        assert update["type"] == "Reset" and update["service"]["name"] == "two"
        assert "test" in agent.drain.sidecars


async def test_a_blocking_read_returns_when_the_index_passes(api):
    agent, http = api
    await (await http.post("/v1/apply", data=SERVICE % ("web", "web"))).release()
    async with http.get("/v1/namespaces/default/endpoints/web") as reply:
        index = (await reply.json())["index"]
    waiting = asyncio.ensure_future(http.get(f"/v1/namespaces/default/endpoints/web?index={index}&wait=10s"))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await (await http.post("/v1/apply", data=(SERVICE % ("web", "web")).replace("8080", "9090"))).release()
    reply = await asyncio.wait_for(waiting, 5)
    assert (await reply.json())["index"] > index


async def test_garbage_and_bad_requests_never_hurt_the_agent(api):
    agent, http = api
    host, port = agent.options.api.split(":")
    def send(junk: bytes) -> None:  # in a thread: the agent runs on this test's loop
        with socket.create_connection((host, int(port)), timeout=2) as conn:
            conn.sendall(junk)
            conn.settimeout(2)
            try:
                conn.recv(100)
            except OSError:
                pass

    for junk in (b"\x00\xff" * 100, b"GET / HTTP/9.9\r\n\r\n", b"POST /v1/apply HTTP/1.1\r\nContent-Length: 99999999\r\n\r\nx",
                 b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n"):
        await asyncio.to_thread(send, junk)
    for method, path, body in (("POST", "/v1/drain", "{"), ("POST", "/v1/drain", "{}"),
                               ("PATCH", "/apis/apps/v1/namespaces/default/deployments/x/scale", "[]"),
                               ("POST", "/v1/apply", "kind: Nonsense\napiVersion: v9\n")):
        async with http.request(method, path, data=body) as reply:
            assert 400 <= reply.status < 500, (path, reply.status, await reply.text())
    async with http.get("/healthz") as reply:
        assert reply.status == 200, await reply.text()


async def test_prometheus_http_sd_lists_the_agent(api):
    agent, http = api
    async with http.get("/v1/prometheus/targets") as reply:
        groups = await reply.json()
    assert groups[0]["targets"] == [agent.options.api] and groups[0]["labels"]["meshd_component"] == "agent"


async def test_http_sd_lists_every_connected_sidecar(api):
    agent, http = api
    async with http.get("/v1/watch/endpoints?sidecar=beside-app&metrics=127.0.0.1:9911") as stream:
        await stream.content.readline()
        async with http.get("/v1/prometheus/targets") as reply:
            groups = await reply.json()
        sidecars = next(g for g in groups if g["labels"]["meshd_component"] == "sidecar")
        assert "127.0.0.1:9911" in sidecars["targets"]
    await asyncio.sleep(0.2)
    async with http.get("/v1/prometheus/targets") as reply:
        assert all("127.0.0.1:9911" not in g["targets"] for g in await reply.json())


async def test_pod_metrics_come_from_the_cgroups(api, busybox_image):
    from tests.integration.agent_harness import eventually, ready_pods

    agent, http = api
    pod = ("apiVersion: v1\nkind: Pod\nmetadata: {name: busy}\nspec:\n  containers:\n  - name: spin\n"
           "    image: meshd/busybox:latest\n    imagePullPolicy: IfNotPresent\n"
           '    command: ["/bin/sh", "-c", "while :; do :; done"]\n')
    done = pod.replace("busy", "done").replace("while :; do :; done", "true") + "  restartPolicy: Never\n"
    await (await http.post("/v1/apply", data=pod + "---\n" + done)).release()
    await eventually(lambda: ready_pods(agent, "busy"))

    async def phase(name: str) -> str:
        async with http.get(f"/api/v1/namespaces/default/pods/{name}") as reply:
            return (await reply.json())["status"]["phase"]

    for _ in range(200):
        if await phase("done") == "Succeeded":
            break
        await asyncio.sleep(0.1)
    async with http.get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods") as reply:
        (item,) = (await reply.json())["items"]  # a completed pod has no metrics (as with metrics-server)
    assert item["metadata"]["name"] == "busy"
    usage = item["containers"][0]["usage"]
    assert int(usage["cpu"].removesuffix("n")) > 100_000_000  # a busy loop uses well over 0.1 core
    assert int(usage["memory"].removesuffix("Ki")) > 0


async def test_a_pod_shows_its_whole_spec_and_is_selected_and_measured_by_labels(api, busybox_image):
    """`get pod -o yaml` gives back what was applied (env, resources, probes, mounts, volumes) with the QoS class;
    set-based selectors select; `top pod NAME` and `top pods -l` answer for that pod alone."""
    from tests.integration.agent_harness import eventually, ready_pods

    agent, http = api
    pod = """\
apiVersion: v1
kind: Pod
metadata: {name: full, labels: {app: full, tier: back}}
spec:
  shareProcessNamespace: true
  volumes: [{name: scratch, emptyDir: {}}]
  containers:
  - name: main
    image: meshd/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/"]
    env: [{name: MODE, value: test}]
    ports: [{containerPort: 8080, name: http}]
    resources: {limits: {cpu: 200m, memory: 32Mi}}
    readinessProbe: {tcpSocket: {port: http}, periodSeconds: 0.2}
    volumeMounts: [{name: scratch, mountPath: /scratch}]
---
apiVersion: v1
kind: Pod
metadata: {name: other, labels: {app: other}}
spec:
  containers: [{name: main, image: meshd/busybox:latest, imagePullPolicy: IfNotPresent,
                command: ["/bin/busybox", "sleep", "300"]}]
"""
    await (await http.post("/v1/apply", data=pod)).release()
    await eventually(lambda: len(ready_pods(agent, "")) == 2)
    async with http.get("/api/v1/namespaces/default/pods/full") as reply:
        full = await reply.json()
    spec, (main,) = full["spec"], full["spec"]["containers"]
    assert spec["shareProcessNamespace"] is True and spec["volumes"] == [{"name": "scratch", "emptyDir": {}}]
    assert main["env"] == [{"name": "MODE", "value": "test"}]
    assert main["resources"] == {"limits": {"cpu": "200m", "memory": "32Mi"},
                                 "requests": {"cpu": "200m", "memory": "32Mi"}}  # Kubernetes' default
    assert main["readinessProbe"]["tcpSocket"] == {"port": "http"}
    assert main["volumeMounts"] == [{"name": "scratch", "mountPath": "/scratch"}]
    assert full["status"]["qosClass"] == "Guaranteed"
    assert spec["nodeName"] == agent.registry.node

    async def names(selector: str) -> list[str]:
        async with http.get("/api/v1/namespaces/default/pods", params={"labelSelector": selector}) as reply:
            return [item["metadata"]["name"] for item in (await reply.json())["items"]]

    assert await names("app!=full") == ["other"]
    assert await names("app in (full,nothing)") == ["full"]
    assert await names("tier") == ["full"]
    async with http.get("/api/v1/namespaces/default/pods", params={"labelSelector": "app in (full"}) as reply:
        assert reply.status == 400  # never "every pod" (think of `meshd delete pods -l ...`)

    async with http.get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/full") as reply:
        metrics = await reply.json()
    assert (metrics["kind"], metrics["metadata"]["name"]) == ("PodMetrics", "full")
    async with http.get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nope") as reply:
        assert reply.status == 404
    async with http.get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
                        params={"labelSelector": "app=other"}) as reply:
        assert [i["metadata"]["name"] for i in (await reply.json())["items"]] == ["other"]


async def test_events_are_served_and_name_why_a_pod_is_pending(tmp_path, agent_id, pause_image):
    """`get events` and describe's Events: the events routes answer (the generic /{resource} route does not
    swallow them); an unschedulable pod is Pending with no container statuses and a FailedScheduling event."""
    agent = await started_agent(agent_options(tmp_path, agent_id, node_cpus="1"))
    try:
        async with aiohttp.ClientSession(f"http://{agent.options.api}", headers=api_headers(agent)) as http:
            pod = ("apiVersion: v1\nkind: Pod\nmetadata: {name: huge}\nspec:\n  containers: [{name: c, "
                   "image: meshd/busybox:latest, resources: {requests: {cpu: '64'}}}]\n")
            await (await http.post("/v1/apply", data=pod)).release()

            async def events() -> list[dict]:
                async with http.get("/api/v1/namespaces/default/events",
                                    params={"fieldSelector": "involvedObject.name=huge"}) as reply:
                    assert reply.status == 200
                    return (await reply.json())["items"]

            async def failed_scheduling() -> bool:
                return any(e["reason"] == "FailedScheduling" for e in await events())

            for _ in range(100):
                if await failed_scheduling():
                    break
                await asyncio.sleep(0.05)
            assert await failed_scheduling()
            async with http.get("/api/v1/events") as reply:
                assert reply.status == 200 and (await reply.json())["kind"] == "EventList"
            async with http.get("/api/v1/namespaces/default/pods/huge") as reply:
                status = (await reply.json())["status"]
            assert status["phase"] == "Pending" and status["containerStatuses"] == [] and "reason" not in status
    finally:
        await agent.close(stop_pods=True)


async def test_a_pod_manifest_cannot_shadow_a_pod_a_replicaset_runs(api, busybox_image):
    """`get pod X -o yaml | apply -f -` on a Deployment's pod is an error naming the owner, changing nothing."""
    from tests.integration.agent_harness import eventually, ready_pods

    agent, http = api
    deployment = ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n"
                  "  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n"
                  "    spec:\n      containers: [{name: c, image: meshd/busybox:latest, imagePullPolicy: IfNotPresent,"
                  ' command: ["/bin/busybox", "sleep", "300"]}]\n')
    await (await http.post("/v1/apply", data=deployment)).release()
    (worker,) = await eventually(lambda: ready_pods(agent, "web-"))
    async with http.get(f"/api/v1/namespaces/default/pods/{worker.name}") as reply:
        pod = await reply.json()
    async with http.post("/v1/apply", data=json.dumps(pod)) as reply:
        assert reply.status == 422
        message = (await reply.json())["message"]
    assert f'pod "{worker.name}" is run by ReplicaSet' in message and 'deployment "web"' in message
    assert ("Pod", "default", worker.name) not in agent.controller.objects

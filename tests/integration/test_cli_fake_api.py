"""The `meshd` CLI as a real process against a small fake agent API (aiohttp on a real socket)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from pathlib import Path

import pytest
from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]


def _pod(name: str, *, ready: bool = True, restarts: int = 0) -> dict:
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "creationTimestamp": "2026-11-24T11:55:00Z",
            "labels": {"app": "web"},
        },
        "spec": {"nodeName": "meshd-node", "containers": [{"name": "web", "image": "meshd/demo:1"}]},
        "status": {
            "phase": "Running",
            "podIP": "10.213.0.5",
            "containerStatuses": [
                {
                    "name": "web",
                    "ready": ready,
                    "restartCount": restarts,
                    "state": {"running": {"startedAt": "2026-11-24T11:55:01Z"}},
                }
            ],
        },
    }


def _deployment(
    name: str, *, generation: int, observed: int, updated: int, total: int, available: int, conditions=()
) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "default",
            "generation": generation,
            "creationTimestamp": "2026-11-24T11:00:00Z",
        },
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": name}}},
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": available,
            "availableReplicas": available,
            "conditions": list(conditions),
        },
    }


ROLLOUT = [
    _deployment("web", generation=2, observed=1, updated=3, total=3, available=3),
    _deployment("web", generation=2, observed=2, updated=1, total=4, available=3),
    _deployment("web", generation=2, observed=2, updated=3, total=4, available=3),
    _deployment("web", generation=2, observed=2, updated=3, total=3, available=2),
    _deployment("web", generation=2, observed=2, updated=3, total=3, available=3),
]
STUCK = _deployment(
    "stuck",
    generation=2,
    observed=2,
    updated=1,
    total=4,
    available=3,
    conditions=[
        {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": 'ReplicaSet "stuck-2" has timed out progressing.',
        }
    ],
)


class FakeAgent:
    """Just enough of the agent's API for the CLI: canned answers, and what the CLI sent."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, str]] = []
        self.rollout_polls = 0
        self.pods = [_pod("web-1"), _pod("web-2", ready=False, restarts=2)]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/apply", self.apply)
        app.router.add_post("/v1/delete", self.delete)
        app.router.add_get("/api/v1/namespaces/{ns}/pods", self.pods_list)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}", self.pod)
        app.router.add_delete("/apis/apps/v1/namespaces/{ns}/deployments/{name}", self.delete_one)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}/log", self.log)
        app.router.add_get("/api/v1/namespaces/{ns}/endpoints", self.endpoints_list)
        app.router.add_get("/v1/watch/endpoints", self.endpoint_watch)
        app.router.add_get("/apis/apps/v1/namespaces/{ns}/deployments/{name}", self.deployment)
        app.router.add_patch("/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale", self.scale)
        app.router.add_get("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods", self.metrics)
        return app

    async def apply(self, request: web.Request) -> web.Response:
        text = await request.text()
        self.received.append(("apply", request.query.get("source", ""), text))
        if "replicas: three" in text:
            return web.json_response(
                {"error": "document 1 (Deployment web): spec.replicas: expected an integer, got 'three'"},
                status=422,
            )
        return web.json_response(
            {
                "results": [
                    {"kind": "Deployment", "namespace": "default", "name": "web", "action": "created"},
                    {"kind": "Service", "namespace": "default", "name": "web", "action": "unchanged"},
                ],
                "warnings": ["document 1 (Deployment web): spec.template.spec.hostname: ignored"],
            }
        )

    async def delete(self, request: web.Request) -> web.Response:
        text = await request.text()
        self.received.append(("delete", request.content_type, text))
        docs = [json.loads(d) for d in text.split("---\n") if d.strip()]
        return web.json_response(
            {
                "results": [
                    {
                        "kind": d["kind"],
                        "namespace": "default",
                        "name": d["metadata"]["name"],
                        "action": "deleted",
                    }
                    for d in docs
                ]
            }
        )

    async def delete_one(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.received.append(("DELETE", request.path, ""))
        if name != "web":
            return web.json_response({"error": f'deployments "{name}" not found'}, status=404)
        return web.json_response(
            {"kind": "Deployment", "namespace": "default", "name": name, "action": "deleted"}
        )

    async def pods_list(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch"):
            resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
            await resp.prepare(request)
            for event in (
                {"type": "ADDED", "object": self.pods[0]},  # unchanged: not printed again
                {"type": "MODIFIED", "object": _pod("web-2", ready=True, restarts=2)},
                {"type": "ADDED", "object": _pod("web-3")},
            ):
                await resp.write(json.dumps(event).encode() + b"\n")
            await resp.write_eof()
            return resp
        return web.json_response({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": self.pods})

    async def pod(self, request: web.Request) -> web.Response:
        for pod in self.pods:
            if pod["metadata"]["name"] == request.match_info["name"]:
                return web.json_response({"apiVersion": "v1", "kind": "Pod", **pod})
        return web.json_response({"error": f'pod "{request.match_info["name"]}" not found'}, status=404)

    async def log(self, request: web.Request) -> web.StreamResponse:
        self.received.append(("log", "", request.query_string))
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        await resp.write(b"line 1\n")
        await resp.write(b"line 2\n")
        await resp.write_eof()
        return resp

    async def endpoints_list(self, request: web.Request) -> web.Response:
        item = {
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-11-24T11:00:00Z"},
            "subsets": [],
        }
        return web.json_response({"kind": "EndpointsList", "apiVersion": "v1", "items": [item]})

    async def endpoint_watch(self, request: web.Request) -> web.StreamResponse:
        service = {
            "namespace": "default",
            "name": "web",
            "address": "10.213.128.7",
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            "annotations": {},
        }
        endpoint = {
            "name": "web-1",
            "address": "10.213.0.5",
            "ports": {"http": 8080},
            "ready": True,
            "reason": "",
            "node": "",
            "hostname": "",
        }
        other = {**service, "namespace": "other", "name": "api"}
        lines = [
            {"type": "Reset", "service": service, "endpoints": []},
            {"type": "Reset", "service": other, "endpoints": []},
            {"type": "Synced"},
            {"type": "Heartbeat"},
            {"type": "Add", "service": "default/web", "endpoints": [endpoint]},
            {
                "type": "Add",
                "service": "default/web",
                "endpoints": [{**endpoint, "name": "web-2", "address": "10.213.0.6"}],
            },
        ]
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        for line in lines:
            await resp.write(json.dumps(line).encode() + b"\n")
        await resp.write_eof()
        return resp

    async def deployment(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "stuck":
            return web.json_response(STUCK)
        if name == "slow":
            return web.json_response(ROLLOUT[1] | {"metadata": {**ROLLOUT[1]["metadata"], "name": "slow"}})
        if name != "web":
            return web.json_response({"error": f'deployment "{name}" not found'}, status=404)
        state = ROLLOUT[min(self.rollout_polls, len(ROLLOUT) - 1)]
        self.rollout_polls += 1
        return web.json_response(state)

    async def scale(self, request: web.Request) -> web.Response:
        self.received.append(("scale", request.match_info["name"], await request.text()))
        return web.json_response({"spec": {"replicas": 5}})

    async def metrics(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "kind": "PodMetricsList",
                "apiVersion": "metrics.k8s.io/v1beta1",
                "items": [
                    {
                        "metadata": {"name": "web-1", "namespace": "default"},
                        "containers": [{"name": "web", "usage": {"cpu": "12m", "memory": "34Mi"}}],
                    }
                ],
            }
        )


@pytest.fixture
async def agent():
    fake = FakeAgent()
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    yield fake
    await runner.cleanup()


async def meshd(api: str, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """Run `meshd ARGS` as a process; (exit status, stdout, stderr)."""
    env = {**os.environ, "MESHD_API": api, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "meshd.cli",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 60)
    return proc.returncode or 0, out.decode(), err.decode()


MANIFEST = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n"


async def test_apply_prints_results_and_warnings(agent, tmp_path):
    path = tmp_path / "web.yaml"
    path.write_text(MANIFEST)
    code, out, err = await meshd(agent.url, "apply", "-f", str(path), "-f", "-", stdin="kind: Service\n")
    assert code == 0, err
    assert out.splitlines() == ["deployment.apps/web created", "service/web unchanged"] * 2
    assert (
        err.splitlines() == ["Warning: document 1 (Deployment web): spec.template.spec.hostname: ignored"] * 2
    )
    assert agent.received[-2:] == [("apply", str(path), MANIFEST), ("apply", "<stdin>", "kind: Service\n")]


async def test_apply_error_is_one_line_and_exit_1(agent):
    code, out, err = await meshd(agent.url, "apply", "-f", "-", stdin=MANIFEST.replace("3", "three"))
    assert code == 1
    assert out == ""
    assert err == "error: document 1 (Deployment web): spec.replicas: expected an integer, got 'three'\n"


async def test_get_pods_table_and_json(agent):
    code, out, err = await meshd(agent.url, "get", "pods")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert lines[1].split()[:4] == ["web-1", "1/1", "Running", "0"]
    assert lines[2].split()[:4] == ["web-2", "0/1", "Running", "2"]

    code, out, _ = await meshd(agent.url, "get", "po", "-o", "json")
    doc = json.loads(out)
    assert doc["kind"] == "List" and [i["metadata"]["name"] for i in doc["items"]] == ["web-1", "web-2"]
    assert (
        doc["items"][0]["kind"] == "Pod"
        and doc["items"][1]["status"]["containerStatuses"][0]["restartCount"] == 2
    )

    code, out, _ = await meshd(agent.url, "get", "pods", "-o", "jsonpath={.items[*].metadata.name}")
    assert (code, out) == (0, "web-1 web-2\n")
    code, out, _ = await meshd(
        agent.url, "get", "pods", "-o", "custom-columns=POD:.metadata.name,IP:.status.podIP"
    )
    assert out.splitlines()[1].split() == ["web-1", "10.213.0.5"]
    code, out, err = await meshd(agent.url, "get", "pods", "-o", "xml")
    assert code == 2 and "unable to match a printer" in err

    code, out, _ = await meshd(agent.url, "get", "pod", "web-1", "-o", "json")
    assert json.loads(out)["metadata"]["name"] == "web-1" and json.loads(out)["kind"] == "Pod"


async def test_get_missing_object(agent):
    code, _, err = await meshd(agent.url, "get", "pod", "nope")
    assert code == 1
    assert err.strip() == 'Error from server (NotFound): pods "nope" not found'


async def test_get_watch_prints_changed_rows(agent):
    code, out, err = await meshd(agent.url, "get", "pods", "-w")
    assert code == 0, err
    rows = [line.split()[:3] for line in out.splitlines()]
    assert rows == [
        ["NAME", "READY", "STATUS"],
        ["web-1", "1/1", "Running"],
        ["web-2", "0/1", "Running"],
        ["web-2", "1/1", "Running"],
        ["web-3", "1/1", "Running"],
    ]


async def test_get_endpoints_watch_follows_the_endpoint_stream(agent):
    code, out, err = await meshd(agent.url, "get", "endpoints", "-w")
    assert code == 0, err
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["NAME", "ENDPOINTS"],
        ["web", "<none>"],
        ["web", "10.213.0.5:8080"],
        ["web", "10.213.0.5:8080,10.213.0.6:8080"],
    ]


async def test_unreachable_agent_is_one_clear_line():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, err = await meshd(f"127.0.0.1:{port}", "get", "pods")
    assert (code, out) == (1, "")
    assert err == (
        f"meshd: cannot reach the agent at http://127.0.0.1:{port}: connection refused — is `meshd agent` running?\n"
    )
    assert "Traceback" not in err


async def test_rollout_status_follows_to_success(agent):
    code, out, err = await meshd(agent.url, "rollout", "status", "deployment/web")
    assert code == 0, err
    assert out.splitlines() == [
        "Waiting for deployment spec update to be observed...",
        'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...',
        'Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...',
        'Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are available...',
        'deployment "web" successfully rolled out',
    ]


async def test_rollout_status_failure_and_timeout(agent):
    code, out, err = await meshd(agent.url, "rollout", "status", "deploy", "stuck")
    assert (code, out) == (1, "")
    assert err.strip() == 'error: deployment "stuck" exceeded its progress deadline'
    code, out, err = await meshd(agent.url, "rollout", "status", "deployment/slow", "--timeout", "0.3s")
    assert code == 1
    assert (
        out
        == 'Waiting for deployment "slow" rollout to finish: 1 out of 3 new replicas have been updated...\n'
    )
    assert err.strip() == "error: timed out waiting for the condition"
    code, _, err = await meshd(agent.url, "rollout", "status", "deployment/missing")
    assert code == 1
    assert err.strip() == 'Error from server (NotFound): deployments.apps "missing" not found'


async def test_scale_logs_top_delete(agent):
    code, out, err = await meshd(agent.url, "scale", "deployment/web", "--replicas", "5")
    assert (code, out) == (0, "deployment.apps/web scaled\n"), err
    assert agent.received[-1] == ("scale", "web", '{"spec": {"replicas": 5}}')

    code, out, err = await meshd(agent.url, "logs", "web-1", "-c", "web", "--tail", "2")
    assert (code, out) == (0, "line 1\nline 2\n"), err
    assert agent.received[-1] == ("log", "", "container=web&tailLines=2")

    code, out, err = await meshd(agent.url, "logs", "deployment/web", "-f")
    assert (code, out) == (0, "line 1\nline 2\n"), err
    assert agent.received[-1] == ("log", "", "follow=1")

    code, out, err = await meshd(agent.url, "top", "pods")
    assert code == 0, err
    assert out.splitlines()[1].split() == ["web-1", "12m", "34Mi"]

    code, out, err = await meshd(agent.url, "delete", "deployment", "web")
    assert (code, out) == (0, 'deployment.apps "web" deleted\n'), err
    assert agent.received[-1] == ("DELETE", "/apis/apps/v1/namespaces/default/deployments/web", "")
    code, out, err = await meshd(agent.url, "delete", "deploy/gone")
    assert (code, err) == (1, 'Error from server (NotFound): deployments.apps "gone" not found\n')


async def test_delete_from_a_file(agent, tmp_path):
    path = tmp_path / "web.json"
    path.write_text('{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}\n')
    code, out, err = await meshd(agent.url, "delete", "-f", str(path))
    assert (code, out) == (0, 'deployment.apps "web" deleted\n'), err
    assert agent.received[-1][0] == "delete"


async def _serve_deployment(state: dict, port: int = 0) -> tuple[web.AppRunner, int]:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(state)

    app = web.Application()
    app.router.add_get("/apis/apps/v1/namespaces/default/deployments/web", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def test_rollout_status_waits_for_a_restarting_agent():
    runner, port = await _serve_deployment(ROLLOUT[1])
    env = {**os.environ, "MESHD_API": f"127.0.0.1:{port}", "PYTHONPATH": str(ROOT)}
    command = ["-m", "meshd.cli", "rollout", "status", "deployment/web", "--timeout", "60s"]
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(sys.executable, *command, stdout=pipe, stderr=pipe, env=env)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        # the CLI has seen the rollout under way (its first status line), whatever its start-up took...
        first = await asyncio.wait_for(proc.stdout.readline(), 60)
        await runner.cleanup()  # ...then the agent goes away mid-rollout...
        lost = await asyncio.wait_for(proc.stderr.readline(), 60)  # ...the CLI notices and waits for it...
        # ...and it comes back with the rollout finished
        runner, _ = await _serve_deployment(ROLLOUT[-1], port)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await runner.cleanup()
    assert proc.returncode == 0, (lost + err).decode()
    assert first.decode().strip(), first
    assert (first + out).decode().splitlines()[-1] == 'deployment "web" successfully rolled out'
    assert lost.decode().startswith("meshd: lost the agent (connection refused); waiting for it to come back")

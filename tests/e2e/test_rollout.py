"""Zero-downtime rollouts, end to end: the agent, its node sidecar (a real process), real containers, and a
steady load from `hey` through the Service address. Every request must succeed while a Deployment rolls to a
new version and back, while it scales from 5 to 1, and while a rollout that never becomes ready times out."""

from __future__ import annotations

import asyncio
import shutil
import textwrap
import urllib.request

import pytest

from meshd.model.endpoints import ServiceKey
from tests.e2e import load
from tests.integration.agent_harness import agent_options, eventually, free_port, pods, ready_pods, started_agent

pytestmark = [pytest.mark.docker, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("hey") is None, reason="hey is not installed (apt-get install hey)")]


def manifest(version: str, *, replicas: int = 3, ready_path: str = "/index.html", deadline: int = 600) -> str:
    return textwrap.dedent(f"""\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: roll}}
        spec:
          replicas: {replicas}
          progressDeadlineSeconds: {deadline}
          selector: {{matchLabels: {{app: roll}}}}
          strategy:
            type: RollingUpdate
            rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}
          template:
            metadata: {{labels: {{app: roll}}}}
            spec:
              terminationGracePeriodSeconds: 3
              containers:
              - name: web
                image: meshd/busybox:latest
                imagePullPolicy: IfNotPresent
                env: [{{name: VERSION, value: {version}}}]
                command: ["/bin/sh", "-c", "mkdir -p /www && echo $VERSION > /www/index.html && exec httpd -f -p 8080 -h /www"]
                ports: [{{containerPort: 8080, name: http}}]
                readinessProbe:
                  httpGet: {{path: {ready_path}, port: http}}
                  periodSeconds: 0.2
                  failureThreshold: 1
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: roll}}
        spec:
          selector: {{app: roll}}
          ports: [{{name: http, port: 80, targetPort: http}}]
        """)


@pytest.fixture
async def agent(tmp_path, agent_id, busybox_image, pause_image):
    agent = await started_agent(agent_options(tmp_path, agent_id, sidecar=True,
                                              sidecar_metrics=f"127.0.0.1:{free_port()}"))
    yield agent
    await agent.close(stop_pods=True)


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as reply:
        return reply.read().decode().strip()


async def serving(url: str) -> str | None:
    try:
        return await asyncio.to_thread(fetch, url)
    except OSError:
        return None


async def up(agent, text: str) -> str:
    await agent.controller.apply(text)
    await eventually(lambda: agent.controller.progress.get(("default", "roll"))
                     and agent.controller.progress[("default", "roll")].complete, timeout=60)
    address = agent.registry.service(ServiceKey("default", "roll")).address
    url = f"http://{address}/index.html"
    for _ in range(200):
        if await serving(url):
            break
        await asyncio.sleep(0.05)
    return url


async def rolled(agent) -> None:
    await asyncio.sleep(0.3)  # let the controller see the new template
    await eventually(lambda: agent.controller.progress.get(("default", "roll"))
                     and agent.controller.progress[("default", "roll")].complete, timeout=90)


async def test_rolling_update_and_rollback_under_load_lose_no_request(agent):
    url = await up(agent, manifest("v1"))
    hey = await load.start_async(url, "-disable-keepalive")
    await asyncio.sleep(1)
    await agent.controller.apply(manifest("v2"))
    await rolled(agent)
    assert await serving(url) == "v2"
    await agent.controller.rollout_undo("default", "roll")
    await rolled(agent)
    await eventually(lambda: len(pods(agent, "roll-")) == 3, timeout=60)  # the load lasts until the last old pod is gone
    codes, output = await load.stop_async(hey)
    assert set(codes) == {"200"} and codes["200"] > 100, output
    assert "Error distribution" not in output, output
    answers = {await serving(url) for _ in range(20)}
    assert answers == {"v1"}


async def test_scale_down_under_load_loses_no_request(agent):
    url = await up(agent, manifest("v1", replicas=5))
    await eventually(lambda: len(ready_pods(agent, "roll-")) == 5)
    hey = await load.start_async(url, "-disable-keepalive")
    await asyncio.sleep(1)
    await agent.controller.scale("Deployment", "default", "roll", 1)
    await eventually(lambda: len(agent.controller.pods) == 1, timeout=30)
    codes, output = await load.stop_async(hey)
    assert set(codes) == {"200"} and "Error distribution" not in output, output


async def test_a_rollout_that_never_becomes_ready_stops_at_the_deadline_and_the_old_version_serves(agent):
    url = await up(agent, manifest("v1"))
    hey = await load.start_async(url, "-disable-keepalive")
    await agent.controller.apply(manifest("v2", ready_path="/missing", deadline=3))
    await eventually(lambda: getattr(agent.controller.progress.get(("default", "roll")), "failed", False),
                     timeout=30)
    codes, output = await load.stop_async(hey)
    assert set(codes) == {"200"} and "Error distribution" not in output, output
    assert {await serving(url) for _ in range(10)} == {"v1"}

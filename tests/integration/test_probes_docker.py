"""Probes on the real engine, with an app whose health is flipped from inside (busybox httpd serving a file
that the test removes or restores): readiness decides the endpoints, liveness and startup failures restart the container."""

from __future__ import annotations

import textwrap

import pytest

from meshd.model.endpoints import ServiceKey
from tests.integration.agent_harness import agent_options, deployment_yaml, eventually, pods, service_yaml, started_agent

pytestmark = [pytest.mark.docker]

# GET /health answers 200 while /www/health exists, else 404: the test flips it from inside the container.
HEALTHY = '["/bin/sh", "-c", "mkdir -p /www && echo ok > /www/health && exec httpd -f -p 8080 -h /www"]'
UNHEALTHY = '["/bin/sh", "-c", "mkdir -p /www && exec httpd -f -p 8080 -h /www"]'


def manifest(name: str, probes: str, *, start_unhealthy: bool = False) -> str:
    command = UNHEALTHY if start_unhealthy else HEALTHY
    return (deployment_yaml(name, image="meshd/busybox:latest", command=command, container="app", grace=1)
            + textwrap.indent(textwrap.dedent(probes), " " * 8) + service_yaml(name))


@pytest.fixture
async def agent(tmp_path, agent_id, busybox_image, pause_image):
    agent = await started_agent(agent_options(tmp_path, agent_id))
    yield agent
    await agent.close(stop_pods=True)


def flip(agent, name: str, unhealthy: bool) -> None:
    worker = pods(agent, f"{name}-")[0]
    command = ("rm", "-f", "/www/health") if unhealthy else ("sh", "-c", "echo ok > /www/health")
    import docker

    docker.from_env().containers.get(worker.containers["app"].id).exec_run(list(command))


def ready_endpoints(agent, name: str) -> list[str]:
    return [e.name for e in agent.registry.ready_endpoints(ServiceKey("default", name))]


async def test_readiness_failure_removes_the_endpoint_and_recovery_restores_it(agent):
    await agent.controller.apply(manifest("ready", """\
        readinessProbe:
          httpGet: {path: /health, port: http}
          periodSeconds: 0.2
          failureThreshold: 1
        """))
    await eventually(lambda: len(ready_endpoints(agent, "ready")) == 1)
    flip(agent, "ready", True)
    await eventually(lambda: not ready_endpoints(agent, "ready"))
    endpoint = agent.registry.endpoints(ServiceKey("default", "ready"))[0]
    assert not endpoint.ready and "404" in endpoint.reason
    flip(agent, "ready", False)
    await eventually(lambda: len(ready_endpoints(agent, "ready")) == 1)
    assert pods(agent, "ready-")[0].containers["app"].restart_count == 0


async def test_liveness_failure_restarts_the_container(agent):
    await agent.controller.apply(manifest("live", """\
        livenessProbe:
          httpGet: {path: /health, port: 8080}
          periodSeconds: 0.2
          failureThreshold: 2
        """))
    await eventually(lambda: pods(agent, "live-") and pods(agent, "live-")[0].ready)
    flip(agent, "live", True)
    worker = pods(agent, "live-")[0]
    await eventually(lambda: worker.containers["app"].restart_count == 1)
    # a fresh container from the image: the flag file is gone, so it stays up
    await eventually(lambda: worker.ready)
    assert worker.containers["app"].last_termination["reason"] == "LivenessProbeFailed"


async def test_failing_startup_probe_restarts_and_keeps_readiness_off(agent):
    await agent.controller.apply(manifest("slow", """\
        startupProbe:
          exec: {command: ["/bin/sh", "-c", "test -f /www/health"]}
          periodSeconds: 0.2
          failureThreshold: 3
        readinessProbe:
          tcpSocket: {port: http}
          periodSeconds: 0.2
        """, start_unhealthy=True))
    await eventually(lambda: pods(agent, "slow-") and pods(agent, "slow-")[0].containers["app"].restart_count >= 1)
    assert not ready_endpoints(agent, "slow")


async def test_tcp_probe_against_a_closed_port_fails(agent):
    await agent.controller.apply(manifest("closed", """\
        readinessProbe:
          tcpSocket: {port: 9999}
          periodSeconds: 0.2
        """))
    await eventually(lambda: pods(agent, "closed-") and pods(agent, "closed-")[0].containers["app"].phase == "running")
    await eventually(lambda: agent.registry.endpoints(ServiceKey("default", "closed")))
    endpoint = agent.registry.endpoints(ServiceKey("default", "closed"))[0]
    assert not endpoint.ready
    await eventually(lambda: "refused" in agent.registry.endpoints(ServiceKey("default", "closed"))[0].reason
                     or agent.registry.endpoints(ServiceKey("default", "closed"))[0].reason)

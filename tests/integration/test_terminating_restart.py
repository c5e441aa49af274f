"""A Terminating object survives an agent restart (its deletionTimestamp and finalizers are in the store): a
ConfigMap (and a Service, still resolved) a user's finalizer holds is still Terminating after the restart and goes when a PATCH takes the
finalizer off; a Deployment held so does not run its pods again; a Pod held so, stopped, is not started again."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
import dns.message
import dns.query
import pytest

from tests.integration.agent_harness import state_headers
from tests.integration.test_cluster_etcd import poll
from tests.integration.test_store_agent import AgentProcess

pytestmark = pytest.mark.slow

CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"},
             "metadata": {"name": "kept", "finalizers": ["example.com/hold"]}}
DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "held", "finalizers": ["example.com/hold"]},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "held"}}, "template": {
                  "metadata": {"labels": {"app": "held"}},
                  "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                      "name": "main", "image": "python",
                      "command": [sys.executable, "-c", "import time; time.sleep(3600)"]}]}}}}
SERVICE = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "kept-svc", "finalizers": ["example.com/hold"]},
           "spec": {"selector": {"app": "held"}, "ports": [{"port": 80, "targetPort": 8080}]}}
CM = "/api/v1/namespaces/default/configmaps"
SVC = "/api/v1/namespaces/default/services"
DEPLOY = "/apis/apps/v1/namespaces/default/deployments"
POD = "/api/v1/namespaces/default/pods"


async def call(agent: AgentProcess, method: str, path: str, body: Any = None,
               content_type: str = "application/json") -> tuple[int, Any]:
    headers = {**state_headers(agent.state_dir), "Content-Type": content_type}
    async with aiohttp.ClientSession() as http, http.request(
            method, agent.api + path, data=None if body is None else json.dumps(body), headers=headers) as reply:
        return reply.status, await reply.json(content_type=None)


@pytest.fixture
async def agent(tmp_path: Path) -> Any:
    started = AgentProcess(tmp_path / "state", tmp_path / "agent.log")
    await started.start()
    yield started
    await started.stop()


async def test_a_terminating_object_stays_so_across_a_restart(agent: AgentProcess) -> None:
    for path, obj in ((CM, CONFIGMAP), (DEPLOY, DEPLOYMENT), (SVC, SERVICE)):
        status, body = await call(agent, "POST", path, obj)
        assert status == 201, body

    async def running() -> bool:
        pods = (await agent.items("pods")).values()
        return len(pods) == 1 and all(p["status"].get("phase") == "Running" for p in pods)

    assert await poll(running)
    for path, name in ((CM, "kept"), (DEPLOY, "held"), (SVC, "kept-svc")):
        status, body = await call(agent, "DELETE", f"{path}/{name}")
        assert status == 200 and body["metadata"]["deletionTimestamp"], body

    async def no_pods() -> bool:
        return not await agent.items("pods")

    assert await poll(no_pods)
    await agent.stop()
    await agent.start()
    for path, name in ((CM, "kept"), (DEPLOY, "held"), (SVC, "kept-svc")):
        status, body = await call(agent, "GET", f"{path}/{name}")
        assert status == 200 and body["metadata"]["finalizers"] == ["example.com/hold"], body
        assert body["metadata"]["deletionTimestamp"]
    assert not await agent.items("pods")  # the held Deployment runs nothing again
    assert resolved(agent, "kept-svc")  # a Terminating Service is still resolved (and routed), as in Kubernetes
    for path, name in ((CM, "kept"), (DEPLOY, "held"), (SVC, "kept-svc")):
        status, body = await call(agent, "PATCH", f"{path}/{name}", {"metadata": {"finalizers": None}},
                                  "application/merge-patch+json")
        assert status == 200, body
        status, body = await call(agent, "GET", f"{path}/{name}")
        assert status == 404, body
    assert not resolved(agent, "kept-svc")


def resolved(agent: AgentProcess, service: str) -> list[str]:
    """The addresses the agent's DNS answers for a Service's name."""
    query = dns.message.make_query(f"{service}.default.svc.cluster.local", "A")
    reply = dns.query.udp(query, "127.0.0.1", port=agent.dns_port, timeout=5)
    return [item.address for rrset in reply.answer for item in rrset]


async def test_a_pod_a_finalizer_holds_stays_terminating_and_stopped_across_a_restart(agent: AgentProcess,
                                                                                      tmp_path: Path) -> None:
    pid_file = tmp_path / "held.pid"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "held-pod", "finalizers": ["example.com/hold"]},
           "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
               "name": "main", "image": "python", "command": [
                   sys.executable, "-c", f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
                                         "time.sleep(3600)"]}]}}
    status, body = await call(agent, "POST", POD, pod)
    assert status == 201, body

    async def started() -> str:
        return pid_file.read_text() if pid_file.exists() else ""

    assert await poll(started)
    pid = int(pid_file.read_text())
    status, body = await call(agent, "DELETE", f"{POD}/held-pod")
    assert status == 200 and body["metadata"]["deletionTimestamp"], body

    async def stopped() -> bool:
        return not Path(f"/proc/{pid}").exists()

    assert await poll(stopped)
    await agent.stop()
    await agent.start()
    status, body = await call(agent, "GET", f"{POD}/held-pod")  # held, and not started again
    assert status == 200 and body["metadata"]["deletionTimestamp"], body
    assert body["metadata"]["finalizers"] == ["example.com/hold"]
    assert pid_file.read_text() == str(pid)
    status, body = await call(agent, "PATCH", f"{POD}/held-pod", {"metadata": {"finalizers": None}},
                              "application/merge-patch+json")
    assert status == 200, body

    async def gone() -> bool:
        return (await call(agent, "GET", f"{POD}/held-pod"))[0] == 404

    assert await poll(gone)

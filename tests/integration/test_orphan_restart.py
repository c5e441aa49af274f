"""Pods orphaned by `--cascade=orphan` survive an agent restart: a StatefulSet or a ReplicaSet deleted with
propagationPolicy=Orphan over the API (process driver), the agent stopped as if killed (its pods keep running),
a new agent on the same state adopts them as bare Pods: the same processes, no ownerReference, nothing made
again."""

from __future__ import annotations

import sys

import aiohttp
import pytest

from tests.integration.agent_harness import agent_options, api_headers, eventually, started_agent

pytestmark = [pytest.mark.slow]

STS = """\
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: keep}
spec:
  serviceName: keep
  replicas: 2
  selector:
    matchLabels: {app: keep}
  template:
    metadata:
      labels: {app: keep}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: python
        command: ["PYTHON", "-c", "import time; time.sleep(3600)"]
""".replace("PYTHON", sys.executable)


def running(agent) -> dict[str, str]:
    """pod name -> its container's id, for the running pods of the StatefulSet's name."""
    return {w.name: w.containers["main"].id for (_, name), w in agent.controller.pods.items()
            if name.startswith("keep-") and w.phase == "Running" and w.containers["main"].id}


@pytest.mark.parametrize("kind", ["StatefulSet", "ReplicaSet"])
async def test_orphaned_pods_are_adopted_as_bare_pods_after_a_restart(tmp_path, agent_id, kind):
    options = agent_options(tmp_path, agent_id, driver="process")
    first = await started_agent(options)
    second = None
    manifest = STS if kind == "StatefulSet" else STS.replace("kind: StatefulSet", "kind: ReplicaSet").replace(
        "  serviceName: keep\n", "")
    resource = f"{kind.lower()}s"
    try:
        await first.controller.apply(manifest)
        await eventually(lambda: len(running(first)) == 2, timeout=60)
        before = running(first)
        async with aiohttp.ClientSession(f"http://{options.api}", headers=api_headers(first, "application/json")) \
                as http, http.delete(f"/apis/apps/v1/namespaces/default/{resource}/keep",
                                     json={"propagationPolicy": "Orphan"}) as reply:
            assert reply.status == 200, await reply.text()
        await first.close(stop_pods=False)  # as if killed: the pods keep running
        first = None
        second = await started_agent(agent_options(tmp_path, agent_id, driver="process", api=options.api,
                                                   dns=options.dns))
        await eventually(lambda: running(second) == before, timeout=60)  # the same processes, adopted
        async with aiohttp.ClientSession(f"http://{options.api}", headers=api_headers(second)) as http, \
                http.get("/api/v1/namespaces/default/pods") as reply:
            shown = {p["metadata"]["name"]: p for p in (await reply.json())["items"]}
        assert sorted(shown) == sorted(before)
        assert all("ownerReferences" not in p["metadata"] for p in shown.values())
        assert (kind, "default", "keep") not in second.controller.objects
    finally:
        for agent in (first, second):
            if agent is not None:
                await agent.close(stop_pods=True)


async def test_pods_stopped_with_the_agent_are_made_anew_at_the_next_start(tmp_path, agent_id):
    """`meshd up`'s Ctrl-C removes every pod: their Pod objects go with them, so the next start makes new pods
    (as after a node's drain) instead of starting the stopped ones again under their old names and ages."""
    options = agent_options(tmp_path, agent_id, driver="process")
    first = await started_agent(options)
    second = None
    manifest = STS.replace("kind: StatefulSet", "kind: ReplicaSet").replace("  serviceName: keep\n", "")
    try:
        await first.controller.apply(manifest)
        await eventually(lambda: len(running(first)) == 2, timeout=60)
        before = set(running(first))
        await first.close(stop_pods=True)
        first = None
        second = await started_agent(agent_options(tmp_path, agent_id, driver="process", api=options.api,
                                                   dns=options.dns))
        await eventually(lambda: len(running(second)) == 2, timeout=60)
        assert not set(running(second)) & before, (before, running(second))
        async with aiohttp.ClientSession(f"http://{options.api}", headers=api_headers(second)) as http, \
                http.get("/api/v1/namespaces/default/pods") as reply:
            shown = {p["metadata"]["name"] for p in (await reply.json())["items"]}
        assert shown == set(running(second))
    finally:
        for agent in (first, second):
            if agent is not None:
                await agent.close(stop_pods=True)

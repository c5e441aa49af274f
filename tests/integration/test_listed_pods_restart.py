"""What the API lists is what the store holds: on one node a pod is listed once its Pod object is stored, so every
pod a client saw survives an agent restart under its name and uid, however soon the restart comes (the agent
used to list a new pod's worker before its object was written, and a restart right then replaced it)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.integration.test_cluster_etcd import poll
from tests.integration.test_store_agent import AgentProcess

pytestmark = pytest.mark.slow

REPLICASET = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "seen"}, "spec": {
    "replicas": 8, "selector": {"matchLabels": {"app": "seen"}}, "template": {
        "metadata": {"labels": {"app": "seen"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "main", "image": "python", "command": [sys.executable, "-c", "import time; time.sleep(3600)"]}]}}}}


async def test_every_listed_pod_survives_an_agent_restart_right_after_the_list(tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path / "state", tmp_path / "agent.log")
    await agent.start()
    try:
        status, body = await agent.request("POST", "/apis/apps/v1/namespaces/default/replicasets",
                                           json.dumps(REPLICASET))
        assert status == 201, body

        async def listed() -> dict[str, str]:
            return {n: p["metadata"]["uid"] for n, p in (await agent.items("pods")).items()}

        seen = await poll(listed)  # the first list that shows any pod, while the others are still being made
        await agent.stop()
        await agent.start()
        after = await listed()
        assert {n: after.get(n) for n in seen} == seen, (seen, after)
    finally:
        await agent.request("DELETE", "/apis/apps/v1/namespaces/default/replicasets/seen")

        async def none_left() -> bool:
            return not await agent.items("pods")

        await poll(none_left)
        await agent.stop()

"""An agent stops at once whatever it just did: closing it right after a ConfigMap changed used to hang until the
config volumes' next sync (Python 3.11's asyncio.wait_for swallows a cancellation that comes with the event it
waits for)."""

from __future__ import annotations

import asyncio
import json

from tests.integration.agent_harness import agent_options, started_agent


async def test_an_agent_closes_right_after_a_configmap_changed(tmp_path, agent_id):
    agent = await started_agent(agent_options(tmp_path, agent_id, driver="process"))
    await agent.controller.apply(json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                                             "metadata": {"name": "cm", "namespace": "default"}, "data": {"k": "v"}}))
    closing = asyncio.ensure_future(agent.close(stop_pods=True))
    done, _ = await asyncio.wait({closing}, timeout=30)
    assert done, "the agent did not close"
    closing.result()

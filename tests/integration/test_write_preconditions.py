"""A write the API checked against a resourceVersion is refused by the store when the object moved on between the
check and the write (another agent's write arriving through the watch, a controller's status write): the version
checked is the store write's precondition, so neither write is lost (two agents' conflicting PUTs on etcd were
both answered 200 once). A real agent (process driver) and its SQLite store; the etcd store checks the same
precondition in its transaction's guard."""

from __future__ import annotations

import json

import pytest

from meshd.store import Conflict
from tests.integration.agent_harness import agent_options, started_agent


def config_map(value: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "default"},
                       "data": {"k": value}})


async def test_a_checked_version_that_moved_on_before_the_write_is_a_conflict_and_nothing_is_lost(
        tmp_path, agent_id):
    agent = await started_agent(agent_options(tmp_path, agent_id, driver="process"))
    try:
        c = agent.controller
        await c.apply(config_map("first"))
        checked = c.store.get("ConfigMap", "default", "cm")["metadata"]["resourceVersion"]
        await c.apply(config_map("second"))  # another writer, after the check below saw `checked`
        with pytest.raises(Conflict):
            await c.apply(config_map("third"), carry_live=False, check=lambda: checked)
        assert c.store.get("ConfigMap", "default", "cm")["data"] == {"k": "second"}
        current = c.store.get("ConfigMap", "default", "cm")["metadata"]["resourceVersion"]
        await c.apply(config_map("third"), carry_live=False, check=lambda: current)  # a fresh check writes
        assert c.store.get("ConfigMap", "default", "cm")["data"] == {"k": "third"}
    finally:
        await agent.close(stop_pods=True)

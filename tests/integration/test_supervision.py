"""A pod worker that raises is restarted from what runs, never left a zombie in ContainerCreating; the node
sidecar is reaped and restarted whatever killed it, and /healthz says so meanwhile (real agent, process
driver, real sidecar process)."""

from __future__ import annotations

import asyncio
import os
import signal
import textwrap
from pathlib import Path

import aiohttp
import pytest

from tests.integration.agent_harness import agent_options, eventually, pods, ready_pods, started_agent

pytestmark = pytest.mark.timeout(120)

SLEEPER = textwrap.dedent("""\
    apiVersion: v1
    kind: Pod
    metadata: {name: sleeper}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, image: sleep, command: ["sleep", "300"]}
    """)


async def test_a_pod_worker_that_raises_is_restarted_and_the_pod_runs(tmp_path: Path, agent_id: str) -> None:
    agent = await started_agent(agent_options(tmp_path, agent_id, driver="process"))
    original = agent.driver.start_container
    calls = 0

    async def start_once_broken(spec):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in the worker")
        return await original(spec)

    agent.driver.start_container = start_once_broken  # type: ignore[method-assign]
    try:
        await agent.controller.apply(SLEEPER)
        await eventually(lambda: ready_pods(agent, "sleeper"), timeout=60)
        (worker,) = pods(agent, "sleeper")
        assert calls == 2 and worker.phase == "Running"
        assert len([c for c in await agent.driver.list_managed() if not c.is_infra]) == 1  # no duplicate
    finally:
        await agent.close(stop_pods=True)


async def test_the_sidecar_is_restarted_whatever_kills_it_and_healthz_tells(tmp_path: Path, agent_id: str) -> None:
    agent = await started_agent(agent_options(tmp_path, agent_id, driver="process", sidecar=True))
    agent.sidecar._interval = 0.2
    seen: list[tuple[int, str]] = []

    async def health() -> tuple[int, str]:
        async with aiohttp.ClientSession() as http, http.get(f"http://{agent.options.api}/healthz") as reply:
            result = (reply.status, await reply.text())
        seen.append(result)
        return result

    async def healthy() -> bool:
        return (await health())[0] == 200

    try:
        await until(healthy)
        for _ in range(3):
            pid = agent.sidecar.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await until(lambda old=pid: _restarted(agent, old))
            await until(healthy)
        assert agent.sidecar.starts >= 4
        failing = [text for status, text in seen if status != 200]
        assert all(text.startswith("sidecar: ") for text in failing), failing  # the truth, and only that
    finally:
        await agent.close(stop_pods=True)


async def _restarted(agent, old_pid: int) -> bool:
    return agent.sidecar.pid not in (None, old_pid)


async def until(check, timeout: float = 60) -> None:
    for _ in range(int(timeout / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met")

"""Every long-lived controller task is supervised: one that dies or ends is logged and started again."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from meshd.controller.loop import Controller, NodeCapacity
from meshd.registry import Registry


async def test_a_task_that_dies_or_ends_is_started_again(tmp_path: Path, caplog, monkeypatch) -> None:
    monkeypatch.setattr(asyncio, "sleep", _no_wait(asyncio.sleep))
    controller = Controller(driver=None, registry=Registry(), state_dir=tmp_path, agent_id="t",  # type: ignore[arg-type]
                            service_pool="127.214.0.0/16", capacity=NodeCapacity(1000, 2**30))
    runs = []
    forever = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("boom")
        if len(runs) == 2:
            return
        await forever.wait()

    caplog.set_level(logging.WARNING)
    task = asyncio.create_task(controller._supervise("flaky", flaky))
    for _ in range(50):
        await asyncio.sleep(0)
    assert runs == [0, 1, 2]
    assert "died" in caplog.text and "ended" in caplog.text
    task.cancel()


def _no_wait(sleep):  # noqa: ANN001, ANN202
    async def fast(delay: float, *args):  # noqa: ANN002, ANN202
        return await sleep(0)

    return fast

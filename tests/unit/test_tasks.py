"""The one supervisor of long-lived tasks: a task that dies or ends is logged and started again after a
growing delay; one that must not restart fails loudly; one-shot tasks are referenced and their failures logged."""

from __future__ import annotations

import asyncio
import logging

import pytest

from meshd.tasks import TaskGroup, restart_delay, run_supervised


@pytest.mark.parametrize(("failures", "delay"), [(0, 0.0), (1, 1.0), (2, 2.0), (3, 4.0), (6, 30.0), (1000, 30.0)])
def test_restart_delay_doubles_to_a_cap(failures: int, delay: float) -> None:
    assert restart_delay(failures, initial=1.0, maximum=30.0) == delay


async def test_a_task_that_dies_or_ends_is_started_again(caplog, monkeypatch) -> None:
    monkeypatch.setattr(asyncio, "sleep", _no_wait(asyncio.sleep))
    runs: list[int] = []
    forever = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("boom")
        if len(runs) == 2:
            return
        await forever.wait()

    caplog.set_level(logging.WARNING)
    group = TaskGroup("test")
    group.supervise("flaky", flaky)
    for _ in range(50):
        await asyncio.sleep(0)
    assert runs == [0, 1, 2]
    assert "task test flaky died" in caplog.text and "RuntimeError: boom" in caplog.text
    assert "ended unexpectedly" in caplog.text
    await group.close()
    assert len(group) == 0


async def test_a_task_that_must_not_restart_fails_loudly() -> None:
    fatal: list[tuple[str, str]] = []

    async def broken() -> None:
        raise OSError(24, "Too many open files")

    await run_supervised("critical", broken, restart=False, on_fatal=lambda n, e: fatal.append((n, str(e))))
    assert fatal == [("critical", "[Errno 24] Too many open files")]


async def test_a_task_asked_to_stop_is_not_restarted() -> None:
    stopping = False
    runs = 0

    async def worker() -> None:
        nonlocal runs
        runs += 1

    stopping = True
    await run_supervised("worker", worker, until=lambda: stopping)
    assert runs == 1


async def test_one_shot_tasks_are_referenced_and_their_failure_logged(caplog) -> None:
    group = TaskGroup("test")

    async def fails() -> None:
        raise ValueError("lost")

    task = group.spawn(fails(), name="once")
    assert len(group) == 1
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)
    assert len(group) == 0
    assert "task test once failed" in caplog.text and "ValueError: lost" in caplog.text


def _no_wait(sleep):
    async def fast(delay: float, *args):
        return await sleep(0)

    return fast

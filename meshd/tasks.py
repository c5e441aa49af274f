"""Supervision for every long-lived task of the agent and the sidecar (kopf's `guard()`, Erlang's supervisor):
a task that dies is logged with its traceback and started again after a growing delay, or, for a task that
must not restart, fails the process loudly. One-shot background tasks are kept referenced until they end and
their failures are logged. Nothing is fire-and-forget.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from prometheus_client import Counter

from meshd.metrics import REGISTRY

log = logging.getLogger(__name__)

RESTART_INITIAL = 1.0
RESTART_MAX = 30.0
HEALTHY_AFTER = 60.0  # a run this long resets the restart delay

TASK_RESTARTS = Counter("meshd_task_restarts", "Long-lived tasks that died or ended and were started again, by "
                        "owner (the first word of the task's name).", ["task"], registry=REGISTRY)
for _owner in ("agent", "controller", "pod", "probe", "mdns-advertiser", "sidecar", "process"):
    TASK_RESTARTS.labels(_owner)  # a series at 0 from the start, so a rate shows 0 rather than nothing


def restart_delay(failures: int, *, initial: float = RESTART_INITIAL, maximum: float = RESTART_MAX) -> float:
    """The wait before the next start after `failures` consecutive failures (1, 2, 4, ... capped)."""
    if failures <= 0:
        return 0.0
    return min(initial * 2 ** min(failures - 1, 30), maximum)


async def done_within(awaitable: Awaitable[Any], timeout: float | None) -> bool:
    """Awaits `awaitable` for at most `timeout` seconds (None: no limit): whether it finished in time (it is
    cancelled when not). Not `asyncio.wait_for`: Python 3.11's swallows a cancellation that comes together with
    what it waits for, so a loop that waits on an event with it may never stop (an agent closed right after a
    ConfigMap changed hung so)."""
    try:
        async with asyncio.timeout(timeout):
            await awaitable
    except TimeoutError:
        return False
    return True


def _fail_loudly(name: str, error: BaseException | None) -> None:
    log.critical("%s must not stop and did (%s): exiting", name, error or "it returned")
    raise SystemExit(70)


async def run_supervised(name: str, run: Callable[[], Awaitable[Any]], *, restart: bool = True,
                         initial: float = RESTART_INITIAL, maximum: float = RESTART_MAX,
                         on_fatal: Callable[[str, BaseException | None], None] = _fail_loudly,
                         until: Callable[[], bool] | None = None,
                         clock: Callable[[], float] = time.monotonic) -> None:
    """Runs `run()` forever. When it raises (or returns), that is logged and it starts again after
    `restart_delay`; with restart=False `on_fatal(name, error)` is called instead (default: exit 70).
    Once `until()` is true, a run that ends is the end (a worker asked to stop)."""
    failures = 0
    while True:
        started = clock()
        error: BaseException | None = None
        try:
            await run()
            if until is not None and until():
                return
            log.error("task %s ended unexpectedly", name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc
            log.exception("task %s died", name)
            if until is not None and until():
                return
        TASK_RESTARTS.labels(name.split(" ")[0]).inc()
        if not restart:
            on_fatal(name, error)
            return
        failures = 1 if clock() - started >= HEALTHY_AFTER else failures + 1
        delay = restart_delay(failures, initial=initial, maximum=maximum)
        log.warning("task %s: starting it again in %.1fs", name, delay)
        await asyncio.sleep(delay)


class TaskGroup:
    """The tasks of one component: supervised long-lived ones and referenced one-shot ones; `close` cancels
    and awaits them all."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._tasks: set[asyncio.Task] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def supervise(self, name: str, run: Callable[[], Awaitable[Any]], **options: Any) -> asyncio.Task:
        """Starts `run` under `run_supervised` (restarted when it dies)."""
        return self._keep(asyncio.create_task(run_supervised(f"{self.owner} {name}", run, **options),
                                              name=f"{self.owner} {name}"))

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task:
        """Runs a one-shot coroutine, referenced until it ends; an exception is logged with its traceback."""
        return self._keep(asyncio.create_task(coro, name=f"{self.owner} {name}"))

    def _keep(self, task: asyncio.Task) -> asyncio.Task:
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    async def wait(self) -> None:
        """Waits for the tasks running now (one-shot ones) without cancelling them."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


BACKGROUND = TaskGroup("background")  # one-shot tasks of objects with no lifetime of their own



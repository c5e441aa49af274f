"""`done_within`, the wait every long-lived loop uses for its event: a cancellation that comes together with the
event ends the loop (Python 3.11's `asyncio.wait_for` swallows it, and the loop waits on for ever)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

import pytest

from meshd.tasks import done_within


async def loop_ends_when_cancelled_with_its_event(wait: Callable[[Awaitable[object], float], Awaitable[object]]
                                                  ) -> bool:
    event = asyncio.Event()

    async def loop() -> None:
        while True:
            await wait(event.wait(), 30)
            event.clear()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.01)
    event.set()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=0.5)
    task.cancel()  # (the loop that swallowed the first one)
    return bool(done)


async def test_a_cancel_that_comes_with_the_event_ends_the_loop() -> None:
    assert await loop_ends_when_cancelled_with_its_event(done_within)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12's wait_for is built on asyncio.timeout")
async def test_wait_for_swallows_it_which_is_why() -> None:
    assert not await loop_ends_when_cancelled_with_its_event(asyncio.wait_for)


async def test_whether_it_was_done_in_time() -> None:
    event = asyncio.Event()
    assert not await done_within(event.wait(), 0.01)
    event.set()
    assert await done_within(event.wait(), 0.01)
    assert await done_within(event.wait(), None)

"""StoreWriter.settled: the API's read-your-writes wait returns once a key's queued write is done (also when it
is replaced while queued), and at once for a key with nothing queued."""

from __future__ import annotations

import asyncio

from meshd.controller.storewriter import StoreWriter


async def test_settled_waits_for_the_keys_write_and_not_for_others() -> None:
    writer = StoreWriter("test", settle=0.01)
    done: list[str] = []
    release = asyncio.Event()

    async def slow() -> None:
        await release.wait()
        done.append("a")

    async def other() -> None:
        done.append("b")

    task = asyncio.create_task(writer.run())
    try:
        await writer.settled("nothing")  # nothing queued: at once
        writer.submit("a", slow)
        writer.submit("b", other)
        waiting = asyncio.create_task(writer.settled("a"))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # "a" is being written
        release.set()
        await asyncio.wait_for(waiting, 5)
        assert done[0] == "a"
        await asyncio.wait_for(writer.settled("b"), 5)
        assert done == ["a", "b"]
    finally:
        task.cancel()


async def test_a_write_replaced_while_queued_is_waited_for_as_written_last() -> None:
    writer = StoreWriter("test", settle=0.01)
    done: list[int] = []

    def write(n: int):  # type: ignore[no-untyped-def]
        async def run() -> None:
            done.append(n)
        return run

    writer.submit("k", write(1))
    writer.submit("k", write(2))
    task = asyncio.create_task(writer.run())
    try:
        await asyncio.wait_for(writer.settled("k"), 5)
        assert done == [2]
    finally:
        task.cancel()

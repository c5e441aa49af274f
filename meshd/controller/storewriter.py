"""The store writes of pods (creations, bindings, deletions, status), off the controller's and the pod workers'
hot path: queued by key (a later write of the same key replaces a queued one, so status is coalesced), written
one at a time, retried when another writer won (Conflict: each write reads the object again) or the store is
unreachable."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable

from meshd.store import AlreadyExists, Conflict, NotFound, StoreError

log = logging.getLogger(__name__)

Write = Callable[[], Awaitable[None]]


class StoreWriter:
    def __init__(self, name: str, *, settle: float = 0.05, retry: float = 1.0) -> None:
        self.name = name
        self._pending: dict[Hashable, Write] = {}
        self._wake = asyncio.Event()
        self._settle, self._retry = settle, retry
        self._writing: Hashable | None = None
        self._round = asyncio.Event()  # set (and replaced) after every attempt
        self.failing = ""

    def submit(self, key: Hashable, write: Write, *, last: bool = False) -> None:
        """Queues `write` under `key`; a queued write of that key is replaced (in its place, or last)."""
        if last:
            self._pending.pop(key, None)
        self._pending[key] = write
        self._wake.set()

    def cancel(self, key: Hashable) -> None:
        self._pending.pop(key, None)

    def pending(self, key: Hashable) -> bool:
        return key in self._pending

    async def settled(self, key: Hashable) -> None:
        """Returns once no write of `key` is queued or being written: the API answers after its write, so a
        client's next read sees it (read-your-writes). The caller bounds the wait."""
        while key in self._pending or self._writing == key:
            await self._round.wait()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self._settle)  # a burst of changes becomes one write per key
            while self._pending:
                key, write = next(iter(self._pending.items()))
                del self._pending[key]
                if not await self._attempt(key, write):
                    if key not in self._pending:
                        self._pending[key] = write
                    await asyncio.sleep(self._retry)

    async def drain(self) -> None:
        """Writes everything queued now, once (for tests and a clean stop); what fails stays queued."""
        for key, write in list(self._pending.items()):
            if self._pending.get(key) is write:
                del self._pending[key]
                if not await self._attempt(key, write) and key not in self._pending:
                    self._pending[key] = write

    async def _attempt(self, key: Hashable, write: Write) -> bool:
        self._writing = key
        try:
            return await self._write(key, write)
        finally:
            self._writing = None
            self._round.set()
            self._round = asyncio.Event()

    async def _write(self, key: Hashable, write: Write) -> bool:
        for _ in range(5):
            try:
                await write()
            except Conflict:
                continue  # another writer won: the write reads the object again
            except (NotFound, AlreadyExists):
                return True  # gone or made meanwhile: nothing left to do
            except StoreError as error:
                if not self.failing:
                    log.warning("%s: cannot write %s: %s (trying again)", self.name, key, error)
                self.failing = str(error)
                return False
            if self.failing:
                log.info("%s: writing again", self.name)
            self.failing = ""
            return True
        return False


__all__ = ["StoreWriter"]

"""Calls' deadlines in 50 ms slots, one loop timer per slot: arming and clearing a call's deadline is a set
insert and removal instead of a loop timer created and cancelled per call (plain asyncio also keeps every
cancelled timer in its heap until it would have fired). A deadline fires at most one slot late."""

from __future__ import annotations

import asyncio
import math
import weakref
from typing import Protocol

SLOT = 0.05


class Timed(Protocol):
    def deadline_passed(self) -> None: ...


class Deadlines:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.slots: dict[int, set[Timed]] = {}

    def add(self, call: Timed, delay: float) -> int:
        """`call.deadline_passed()` in `delay` seconds (up to one slot later) unless removed; its slot key."""
        key = math.ceil((self.loop.time() + delay) / SLOT)
        slot = self.slots.get(key)
        if slot is None:
            slot = self.slots[key] = set()
            self.loop.call_at(key * SLOT, self._fire, key)
        slot.add(call)
        return key

    def remove(self, call: Timed, key: int) -> None:
        slot = self.slots.get(key)
        if slot is not None:
            slot.discard(call)

    def _fire(self, key: int) -> None:
        for call in list(self.slots.pop(key, ())):
            call.deadline_passed()


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines] = weakref.WeakKeyDictionary()


def deadlines(loop: asyncio.AbstractEventLoop) -> Deadlines:
    """The loop's deadlines (one per loop)."""
    found = _by_loop.get(loop)
    if found is None:
        found = _by_loop[loop] = Deadlines(loop)
    return found

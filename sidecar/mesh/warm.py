"""Warm connections to other nodes' gateways: a new connection to a pod on another node takes one whose TLS
handshake is done already, so it pays one round trip (the CONNECT line) instead of the handshake's as well.
Backends that close every connection (HTTP/1.0 servers, `Connection: close`) and opaque TCP clients that open
a connection per request meet this on every request.

Connections whose stream ended cleanly on meshd/2 come back here too (`put`, sidecar/mesh/wire.py), as
keep-alive connections to a pool. A gateway is kept warm only while it is used: each use takes an idle
connection (if one is there) and tops the gateway up to `size` idle ones in the background; an idle connection is closed after `idle` seconds (before
the gateway's own preamble timeout gives up on it) and replaced only if the gateway was used within `keep`.
`plan` is that decision, pure; `WarmPool` holds the connections and runs it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

SIZE = 2  # idle connections kept per gateway in use
IDLE = 8.0  # seconds an idle one is kept: under the gateway's PREAMBLE_TIMEOUT (10 s)
KEEP = 30.0  # seconds a gateway stays warm after its last use
MOST = 64  # idle connections (warmed or given back after their stream) kept per gateway at most


class Idle(Protocol):
    def alive(self) -> bool: ...

    def close_idle(self) -> None: ...


@dataclass(frozen=True)
class Plan:
    expire: tuple[int, ...]  # indexes (oldest first) of idle connections to close now
    open: int  # connections to open now


def plan(now: float, made: list[float], last_used: float | None, opening: int, *,
         size: int = SIZE, idle: float = IDLE, keep: float = KEEP) -> Plan:
    """What to do for one gateway: `made` the times its idle connections were made (oldest first), `last_used`
    its last use (None: never), `opening` how many are being opened."""
    expire = tuple(i for i, t in enumerate(made) if now - t >= idle)
    warm = last_used is not None and now - last_used < keep
    left = len(made) - len(expire) + opening
    return Plan(expire, max(0, size - left) if warm else 0)


@dataclass
class _Gateway:
    idle: list[tuple[float, Any]] = field(default_factory=list)  # (made, connection), oldest first
    last_used: float | None = None
    opening: int = 0
    timer: asyncio.TimerHandle | None = None


class WarmPool:
    """Idle, handshaken connections per gateway key. `open_one(key)` makes one (raises OSError on failure)."""

    def __init__(self, open_one: Callable[[Hashable], Awaitable[Any]], *, size: int = SIZE, idle: float = IDLE,
                 keep: float = KEEP, most: int = MOST, clock: Callable[[], float] = time.monotonic) -> None:
        self._open_one = open_one
        self.size, self.idle, self.keep, self.most = size, idle, keep, most
        self._clock = clock
        self._gateways: dict[Hashable, _Gateway] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.hits = 0  # uses served by a warm connection

    def take(self, key: Hashable) -> Any | None:
        """A live idle connection to this gateway (None: none), and the gateway marked in use."""
        g = self._gateways.setdefault(key, _Gateway())
        g.last_used = self._clock()
        found = None
        while g.idle:
            _, conn = g.idle.pop()  # the newest: the furthest from its expiry
            if conn.alive():
                found = conn
                break
        self._run(key)
        if found is not None:
            self.hits += 1
        return found

    def put(self, key: Hashable, conn: Any) -> None:
        """A connection free again (its stream over, meshd/2): idle until taken or expired, at most `most`."""
        g = self._gateways.setdefault(key, _Gateway())
        if len(g.idle) >= self.most:
            conn.close_idle()
            return
        g.idle.append((self._clock(), conn))
        self._run(key)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for g in self._gateways.values():
            for _, conn in g.idle:
                conn.close_idle()
            if g.timer is not None:
                g.timer.cancel()
        self._gateways.clear()

    def _run(self, key: Hashable) -> None:
        g = self._gateways.get(key)
        if g is None:
            return
        g.idle = [(t, c) for t, c in g.idle if c.alive()]
        now = self._clock()
        decided = plan(now, [t for t, _ in g.idle], g.last_used, g.opening, size=self.size, idle=self.idle,
                       keep=self.keep)
        for i in reversed(decided.expire):
            g.idle.pop(i)[1].close_idle()
        for _ in range(decided.open):
            g.opening += 1
            task = asyncio.get_running_loop().create_task(self._open(key, g))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if g.timer is not None:
            g.timer.cancel()
            g.timer = None
        if g.idle:  # look again when the oldest expires
            g.timer = asyncio.get_running_loop().call_at(
                asyncio.get_running_loop().time() + max(0.0, g.idle[0][0] + self.idle - now), self._run, key)
        elif not g.opening and (g.last_used is None or now - g.last_used >= self.keep):
            del self._gateways[key]  # cold: forgotten

    async def _open(self, key: Hashable, g: _Gateway) -> None:
        try:
            conn = await self._open_one(key)
        except (OSError, TimeoutError) as error:
            log.debug("mesh: no warm connection to %s: %s", key, error)
            return  # (the next use tries again)
        finally:
            g.opening -= 1
        if self._gateways.get(key) is not g:
            with contextlib.suppress(Exception):
                conn.close_idle()
            return
        g.idle.append((self._clock(), conn))
        self._run(key)


__all__ = ["IDLE", "KEEP", "MOST", "SIZE", "Plan", "WarmPool", "plan"]

"""Warm gateway connections (sidecar/mesh/warm.py): the pure plan per gateway, and the pool with fake
connections and a fake clock (one decision each; the real sockets are in tests/integration/test_mesh_tls.py)."""

from __future__ import annotations

import asyncio

import pytest

from sidecar.mesh.warm import Plan, WarmPool, plan


@pytest.mark.parametrize(("now", "made", "last_used", "opening", "expected"), [
    (100.0, [], None, 0, Plan((), 0)),  # never used: nothing opened
    (100.0, [], 99.0, 0, Plan((), 2)),  # just used, none idle: two opened
    (100.0, [98.0], 99.0, 0, Plan((), 1)),  # one idle: one more
    (100.0, [98.0], 99.0, 1, Plan((), 0)),  # one idle, one opening: full
    (100.0, [91.0, 95.0], 99.0, 0, Plan((0,), 1)),  # the oldest expired (8 s): closed and replaced
    (100.0, [91.0, 92.0], 60.0, 0, Plan((0, 1), 0)),  # cold (last use 40 s ago): expired ones not replaced
    (100.0, [95.0, 96.0], 60.0, 0, Plan((), 0)),  # cold: fresh ones kept until they expire
    (100.0, [95.0, 96.0, 97.0], 99.0, 0, Plan((), 0)),  # more than the size (a smaller size now): none opened
])
def test_plan(now: float, made: list[float], last_used: float | None, opening: int, expected: Plan) -> None:
    assert plan(now, made, last_used, opening) == expected


class Conn:
    def __init__(self, n: int) -> None:
        self.n = n
        self.closed = False

    def alive(self) -> bool:
        return not self.closed

    def close_idle(self) -> None:
        self.closed = True


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_used_gateway_is_kept_warm_and_a_dead_connection_is_never_taken() -> None:
    made: list[Conn] = []

    async def open_one(key: object) -> Conn:
        made.append(Conn(len(made)))
        return made[-1]

    now = [0.0]
    pool = WarmPool(open_one, size=2, idle=8.0, keep=30.0, clock=lambda: now[0])
    try:
        assert pool.take("g") is None  # cold: none yet, two are opened
        await settle()
        assert len(made) == 2
        first = pool.take("g")
        assert first is made[1] and pool.hits == 1  # the newest; one more is opened to refill
        await settle()
        assert len(made) == 3
        made[0].closed = True  # the gateway closed it meanwhile
        assert pool.take("g") is made[2]
        assert pool.take("g") is None  # the closed one is not taken
        await settle()
        assert pool.take("other") is None  # each gateway on its own
    finally:
        pool.close()
    assert all(c.closed for c in made[3:])


async def test_a_failed_open_is_tried_again_at_the_next_use() -> None:
    calls = 0

    async def open_one(key: object) -> Conn:
        nonlocal calls
        calls += 1
        raise ConnectionRefusedError("no gateway")

    pool = WarmPool(open_one, size=1)
    try:
        assert pool.take("g") is None
        await settle()
        assert calls == 1
        assert pool.take("g") is None
        await settle()
        assert calls == 2
    finally:
        pool.close()

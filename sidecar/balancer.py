"""Per-request endpoint choice: round robin, P2C least-request and P2C peak-EWMA (Linkerd's default).

A balancer only decides: `pick(candidates, exclude)` returns one of `candidates` (never one in `exclude`
unless nothing else is left) or None when `candidates` is empty. RNG and clock are injected.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Collection, Sequence
from typing import Protocol

DEFAULT_RTT = 0.030  # seconds; Linkerd's default before any response was observed
DECAY = 10.0  # seconds; Linkerd's peak-EWMA decay window


class Target:
    """What a balancer looks at for one endpoint: its in-flight count and its RTT estimate (peak-EWMA)."""

    __slots__ = ("in_flight", "rtt", "rtt_at")

    def __init__(self, *, now: float = 0.0, rtt: float = DEFAULT_RTT) -> None:
        self.in_flight = 0
        self.rtt = rtt
        self.rtt_at = now

    def observe_rtt(self, rtt: float, now: float) -> None:
        """Peak-EWMA: a slower sample replaces the estimate at once, faster ones decay it toward them."""
        if rtt > self.rtt:
            self.rtt = rtt
        else:
            w = math.exp(-(now - self.rtt_at) / DECAY) if now > self.rtt_at else 1.0
            self.rtt = self.rtt * w + rtt * (1.0 - w)
        self.rtt_at = now

    def cost(self, now: float) -> float:
        """Linkerd's load: the decayed RTT estimate times (pending + 1)."""
        rtt = self.rtt
        if now > self.rtt_at:
            rtt *= math.exp(-(now - self.rtt_at) / DECAY)
        return rtt * (self.in_flight + 1)


class Balancer(Protocol):
    def pick(self, candidates: Sequence[Target], exclude: Collection[Target] = ...) -> Target | None: ...


def _remaining(candidates: Sequence[Target], exclude: Collection[Target]) -> Sequence[Target]:
    if not exclude:
        return candidates
    rest = [c for c in candidates if c not in exclude]
    return rest or candidates


class RoundRobin:
    """Each candidate in turn."""

    def __init__(self, *, rng: random.Random | None = None) -> None:
        self._next = (rng or random.Random()).randrange(1 << 16)

    def pick(self, candidates: Sequence[Target], exclude: Collection[Target] = frozenset()) -> Target | None:
        pool = _remaining(candidates, exclude) if exclude else candidates
        n = len(pool)
        if not n:
            return None
        i = self._next % n
        self._next = i + 1
        return pool[i]


class _P2C:
    """Power of two choices: draw two distinct candidates at random, keep the one with the lower load."""

    def __init__(self, *, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def _load(self, target: Target) -> float:
        raise NotImplementedError

    def pick(self, candidates: Sequence[Target], exclude: Collection[Target] = frozenset()) -> Target | None:
        pool = _remaining(candidates, exclude)
        n = len(pool)
        if n <= 1:
            return pool[0] if n else None
        rand = self._rng.random
        a = int(rand() * n)
        b = int(rand() * (n - 1))
        if b >= a:
            b += 1
        ta, tb = pool[a], pool[b]
        return tb if self._load(tb) < self._load(ta) else ta


class LeastRequest(_P2C):
    """P2C on the number of requests in flight."""

    def _load(self, target: Target) -> float:
        return target.in_flight


class PeakEwma(_P2C):
    """P2C on Linkerd's peak-EWMA cost (RTT estimate x (pending + 1))."""

    def __init__(
        self, *, rng: random.Random | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(rng=rng)
        self._clock = clock

    def _load(self, target: Target) -> float:
        return target.cost(self._clock())


ALGORITHMS = {"round_robin": RoundRobin, "least_request": LeastRequest, "ewma": PeakEwma}


def make_balancer(
    name: str, *, rng: random.Random | None = None, clock: Callable[[], float] = time.monotonic
) -> RoundRobin | LeastRequest | PeakEwma:
    """The balancer an `meshd.io/lb-algorithm` value names (unknown -> round robin)."""
    if name == "least_request":
        return LeastRequest(rng=rng)
    if name == "ewma":
        return PeakEwma(rng=rng, clock=clock)
    return RoundRobin(rng=rng)

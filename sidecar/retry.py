"""Retry decisions: which failures may be retried, and Linkerd's retry budget (a pure, clocked counter)."""

from __future__ import annotations

from collections import deque

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
RETRYABLE_STATUS = frozenset({502, 503, 504})


def may_retry(*, method: bytes, status: int | None, connect_failed: bool, replayable: bool) -> bool:
    """Connect failures retry for every method; 502/503/504 (or a broken connection, `status` None)
    only for idempotent methods whose body is still at hand (`replayable`)."""
    if connect_failed:
        return replayable
    if not replayable or method not in IDEMPOTENT:
        return False
    return status is None or status in RETRYABLE_STATUS


class RetryBudget:
    """Retries allowed = `min_per_sec` x `ttl` + `ratio` x requests, within a sliding `ttl` window.

    Like Linkerd's (tower's TpsBudget): about `ratio` extra load at most, but always at least
    `min_per_sec` retries per second so that a quiet Service can still retry.
    """

    def __init__(
        self, *, ratio: float = 0.2, min_per_sec: float = 10.0, ttl: float = 10.0, slots: int = 10
    ) -> None:
        self.ratio = ratio
        self.reserve = min_per_sec * ttl
        self._slot_len = ttl / slots
        self._slots = slots
        self._deposits: deque[int] = deque([0] * slots, maxlen=slots)
        self._withdrawals: deque[int] = deque([0] * slots, maxlen=slots)
        self._deposit_sum = 0  # (without the open slot's `current`)
        self._withdraw_sum = 0
        self.current = 0  # deposits in the open slot, a plain int (the proxy adds 1 per request)
        self._slot = 0
        self._slot_start = 0.0
        self._slot_end = self._slot_len

    def _advance(self, now: float) -> None:
        slot = int(now / self._slot_len)
        if slot == self._slot:
            return
        if self.current:  # close the open slot
            self._deposits[-1] += self.current
            self._deposit_sum += self.current
            self.current = 0
        steps = min(slot - self._slot, self._slots) if slot > self._slot else self._slots
        for _ in range(steps):
            self._deposit_sum -= self._deposits[0]
            self._withdraw_sum -= self._withdrawals[0]
            self._deposits.append(0)
            self._withdrawals.append(0)
        self._slot = slot
        self._slot_start = slot * self._slot_len
        self._slot_end = self._slot_start + self._slot_len

    def deposit(self, now: float) -> None:
        """One original request was sent."""
        if not self._slot_start <= now < self._slot_end:
            self._advance(now)
        self.current += 1

    def withdraw(self, now: float) -> bool:
        """Take one retry from the budget; False (and nothing taken) when it is spent."""
        self._advance(now)
        if self._withdraw_sum + 1 > self.reserve + self.ratio * (self._deposit_sum + self.current):
            return False
        self._withdrawals[-1] += 1
        self._withdraw_sum += 1
        return True

"""Passive outlier ejection as a pure state machine (Envoy/Linkerd style failure accrual).

`consecutive` failures in a row (5xx responses or connect errors) eject an endpoint for
`base_ejection * times_ejected` seconds (capped at `max_ejection`), but never more than
`max_ejected_fraction` of a Service's endpoints at once; an endpoint that turns ready again (its readiness
probe, an active health check, passed) is back at once. Time is passed in; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class OutlierPolicy:
    consecutive: int = 5
    base_ejection: float = 30.0
    max_ejection: float = 300.0
    max_ejected_fraction: float = 0.5


class _State:
    __slots__ = ("ejected_until", "failures", "times_ejected")

    def __init__(self) -> None:
        self.failures = 0
        self.times_ejected = 0
        self.ejected_until = 0.0


class OutlierDetector:
    """Failure accrual for the endpoints of one Service, keyed by any hashable endpoint id."""

    def __init__(self, policy: OutlierPolicy | None = None) -> None:
        self.policy = policy or OutlierPolicy()
        self._states: dict[Hashable, _State] = {}

    def record(self, key: Hashable, ok: bool, now: float, *, total: int) -> bool:
        """Count one outcome for `key` among `total` endpoints; True when this outcome ejects it."""
        state = self._states.get(key)
        if ok:
            if state is not None:
                state.failures = 0
            return False
        if state is None:
            state = self._states[key] = _State()
        if state.ejected_until > now:
            return False
        state.failures += 1
        if state.failures < self.policy.consecutive:
            return False
        if self.ejected_count(now) + 1 > int(total * self.policy.max_ejected_fraction):
            return False  # keep failure count: it ejects as soon as room frees up
        state.times_ejected += 1
        state.failures = 0
        duration = min(self.policy.base_ejection * state.times_ejected, self.policy.max_ejection)
        state.ejected_until = now + duration
        return True

    def is_ejected(self, key: Hashable, now: float) -> bool:
        state = self._states.get(key)
        return state is not None and state.ejected_until > now

    def ejected_count(self, now: float) -> int:
        return sum(1 for s in self._states.values() if s.ejected_until > now)

    def next_expiry(self, now: float) -> float | None:
        """When the earliest current ejection ends (None if nothing is ejected)."""
        ends = [s.ejected_until for s in self._states.values() if s.ejected_until > now]
        return min(ends) if ends else None

    def uneject(self, key: Hashable) -> None:
        """An active health check passed (the endpoint turned ready again): its ejection ends now, and its
        failure count starts over (as Envoy's successful_active_health_check_uneject_host). How often it was
        ejected stays: a next ejection lasts longer."""
        state = self._states.get(key)
        if state is not None:
            state.ejected_until = 0.0
            state.failures = 0

    def forget(self, key: Hashable) -> None:
        self._states.pop(key, None)

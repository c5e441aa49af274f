"""`/healthz` that tells the truth: named checks (state writable, event-loop lag, sidecar connected), each a
cheap callable; the verdict is a pure function of their results. The loop lag is measured by a ticker."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import Gauge

from meshd.metrics import REGISTRY

LOOP_LAG = Gauge("meshd_loop_lag_seconds", "How late the event loop's ticker woke, the worst of the last window.",
                 registry=REGISTRY)


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str = ""


Check = Callable[[], CheckResult]


def verdict(results: list[CheckResult]) -> tuple[int, str]:
    """(200, "ok") when every check passes, else (503, one line per failing check)."""
    failing = [r for r in results if not r.ok]
    if not failing:
        return 200, "ok"
    return 503, "".join(f"{r.name}: {r.detail}\n" for r in failing)


class HealthChecks:
    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    def run(self) -> list[CheckResult]:
        results = []
        for name, check in self._checks.items():
            try:
                results.append(check())
            except Exception as error:  # noqa: BLE001 - a broken check is a failing one
                results.append(CheckResult(name, False, f"check failed: {error}"))
        return results


class LoopLagMonitor:
    """Sleeps `interval` over and over and records how late it woke: the worst lag of the last `window`
    ticks (a loop blocked for a second shows as ~1 s for window x interval seconds)."""

    def __init__(self, *, interval: float = 0.25, window: int = 20, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self._clock = clock
        self._lags: list[float] = [0.0] * window
        self._i = 0

    @property
    def lag(self) -> float:
        return max(self._lags)

    def observe(self, lag: float) -> None:
        self._lags[self._i] = max(lag, 0.0)
        self._i = (self._i + 1) % len(self._lags)
        LOOP_LAG.set(self.lag)

    async def run(self) -> None:
        while True:
            due = self._clock() + self.interval
            await asyncio.sleep(self.interval)
            self.observe(self._clock() - due)

    def check(self, limit: float) -> Check:
        return lambda: CheckResult("loop", self.lag <= limit,
                                   f"event loop lag {self.lag:.2f}s (limit {limit:g}s)")


def state_writable(state_dir: Path, *, min_free: int = 1) -> Check:
    """The state dir can be written: writable and at least `min_free` bytes free (a hook the state store may
    replace with its own check)."""

    def check() -> CheckResult:
        if not os.access(state_dir, os.W_OK):
            return CheckResult("state", False, f"{state_dir} is not writable")
        stats = os.statvfs(state_dir)
        free = stats.f_bavail * stats.f_frsize
        if free < min_free:
            return CheckResult("state", False, f"{state_dir}: only {free} bytes free")
        return CheckResult("state", True)

    return check

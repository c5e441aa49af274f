"""Kubernetes' crash-loop backoff as a pure value: the first restart is immediate, then 10 s doubling to 300 s,
forgotten after 10 minutes of clean running."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class BackoffPolicy:
    initial: float = 10.0
    maximum: float = 300.0
    reset_after: float = 600.0


@dataclass(frozen=True)
class Backoff:
    """Restarts so far in the current crash loop, and when the container last started."""

    restarts: int = 0
    last_start: float | None = None

    def delay(self, policy: BackoffPolicy, *, now: float) -> float:
        """How long to wait before the next restart (0 for the first, or after a clean run)."""
        if self.restarts == 0 or self._ran_clean(policy, now=now):
            return 0.0
        return min(policy.initial * 2 ** (self.restarts - 1), policy.maximum)

    def started(self, policy: BackoffPolicy, *, now: float) -> Backoff:
        """The state after a restart begins at `now`."""
        restarts = 1 if self._ran_clean(policy, now=now) else self.restarts + 1
        return replace(self, restarts=restarts, last_start=now)

    def first_start(self, *, now: float) -> Backoff:
        return replace(self, last_start=now)

    def _ran_clean(self, policy: BackoffPolicy, *, now: float) -> bool:
        return self.last_start is not None and now - self.last_start >= policy.reset_after


def should_restart(restart_policy: str, exit_code: int | None) -> bool:
    """Whether a container that exited is restarted, by the pod's restartPolicy."""
    if restart_policy == "Always":
        return True
    if restart_policy == "OnFailure":
        return exit_code != 0
    return False

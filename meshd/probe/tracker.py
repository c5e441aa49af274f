"""Probe thresholds and container health as pure state machines: no I/O, no clock (kubelet's worker + results).

`ProbeTracker(probe, kind).observe(result)` counts consecutive results of the same outcome and returns a
`Transition` only when the published state changes (the kubelet's results manager); otherwise None.
  - readiness starts "unknown" (not ready) until successThreshold consecutive successes;
  - liveness starts "success" and turns "failure" after failureThreshold consecutive failures;
  - startup starts "unknown", turns "success" after successThreshold successes and then stays "success"
    (sticky, as the kubelet stops probing a started container), or "failure" after failureThreshold failures.
  - an "error" result (the prober broke) is recorded as `last` but neither counts nor breaks a run.
`container_health(running=, startup=, liveness=, readiness=)` combines the per-probe states of one container
into `ContainerHealth(ready, action, reason)`: action "restart" when liveness or startup has failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from meshd.model.objects import Probe
from meshd.probe.result import ProbeResult

Kind = Literal["liveness", "readiness", "startup"]
KINDS: tuple[Kind, ...] = ("startup", "liveness", "readiness")
State = Literal["unknown", "success", "failure"]

INITIAL_STATE: dict[Kind, State] = {"liveness": "success", "readiness": "unknown", "startup": "unknown"}


@dataclass(frozen=True)
class Transition:
    """A published change of one probe's state; `result` is the probe result that completed the run."""

    kind: Kind
    previous: State
    current: State
    result: ProbeResult


@dataclass(frozen=True)
class ProbeStatus:
    """One probe's published state and the message of the result that set it (for health and describe)."""

    state: State
    message: str = ""


class ProbeTracker:
    """Thresholds of one probe of one container instance; `observe` publishes changes only."""

    def __init__(self, probe: Probe, kind: Kind) -> None:
        self.kind: Kind = kind
        self.success_threshold = max(1, int(probe.success_threshold))
        self.failure_threshold = max(1, int(probe.failure_threshold))
        self.state: State = INITIAL_STATE[kind]
        self.last: ProbeResult | None = None  # the latest result, errors included
        self.changed_by: ProbeResult | None = None  # the result that completed the latest transition
        self._run_outcome: str | None = None
        self._run = 0

    def observe(self, result: ProbeResult) -> Transition | None:
        """Feeds one probe result; returns the transition it completes, if any."""
        self.last = result
        if result.outcome == "error":
            return None
        if result.outcome == self._run_outcome:
            self._run += 1
        else:
            self._run_outcome, self._run = result.outcome, 1
        new: State = "success" if result.outcome == "success" else "failure"
        threshold = self.success_threshold if new == "success" else self.failure_threshold
        if self._run < threshold or new == self.state:
            return None
        if self.kind == "startup" and self.state == "success":
            return None  # a started container stays started
        previous, self.state, self.changed_by = self.state, new, result
        return Transition(self.kind, previous, new, result)

    def status(self) -> ProbeStatus:
        return ProbeStatus(self.state, self.changed_by.message if self.changed_by else "")


@dataclass(frozen=True)
class ContainerHealth:
    ready: bool
    action: Literal["restart"] | None
    reason: str  # why not ready / why restart, kubectl-style ("Liveness probe failed: ...")


def container_health(
    *,
    running: bool,
    startup: ProbeStatus | None = None,
    liveness: ProbeStatus | None = None,
    readiness: ProbeStatus | None = None,
) -> ContainerHealth:
    """Readiness and the action for one container; a probe the container does not declare is None.

    Ready needs: running, startup succeeded (if declared), liveness not failed, readiness succeeded (if
    declared). A failed liveness/startup probe means restart, and the container is unready at once.
    """
    if not running:
        return ContainerHealth(False, None, "container is not running")
    if startup is not None and startup.state == "failure":
        return ContainerHealth(False, "restart", f"Startup probe failed: {startup.message}")
    if startup is not None and startup.state != "success":
        return ContainerHealth(False, None, "Startup probe has not succeeded yet")
    if liveness is not None and liveness.state == "failure":
        return ContainerHealth(False, "restart", f"Liveness probe failed: {liveness.message}")
    if readiness is None:
        return ContainerHealth(True, None, "container is running")
    if readiness.state == "success":
        return ContainerHealth(True, None, "Readiness probe succeeded")
    if readiness.state == "failure":
        return ContainerHealth(False, None, f"Readiness probe failed: {readiness.message}")
    return ContainerHealth(False, None, "Readiness probe has not succeeded yet")

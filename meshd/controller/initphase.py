"""Init containers, as the kubelet runs them (pure decisions, table-tested).

`initContainers` run in order, each to completion, before the app containers. One with `restartPolicy:
Always` is a native sidecar: it is started in its turn, the next one waits until it has started (running,
and its startupProbe passed if it has one), it keeps running (restarted whenever it ends) and is not waited
for to complete. A failed init container restarts per the pod's restartPolicy (Always counts as OnFailure for
it: a completed one is done); under Never the pod fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from meshd.model.objects import Container

Phase = Literal["waiting", "running", "terminated"]


@dataclass(frozen=True)
class InitState:
    """What the next-step decision needs of one init container."""

    name: str
    sidecar: bool = False
    phase: Phase = "waiting"
    exit_code: int | None = None
    has_instance: bool = False  # an instance exists (running or ended)
    pending: bool = False  # a restart (or a failed start's retry) is due later
    started: bool = False  # sidecar: it has been running with its startup probe passed


@dataclass(frozen=True)
class InitStep:
    action: Literal["start", "wait", "done", "failed"]
    name: str = ""  # the container to start, the one waited for, or the one that failed


def next_init_step(states: Sequence[InitState]) -> InitStep:
    """What to do next: start an init container, wait for one, start the app containers (done), or give up
    (a failed init container that will not be restarted: the pod fails)."""
    for s in states:
        if s.sidecar:
            if s.started:
                continue
            if s.has_instance or s.pending:
                return InitStep("wait", s.name)
            return InitStep("start", s.name)
        if s.phase == "terminated" and s.exit_code == 0:
            continue
        if s.phase == "running" or s.pending:
            return InitStep("wait", s.name)
        if s.phase == "terminated":
            return InitStep("failed", s.name)
        if s.has_instance:  # created, not yet running
            return InitStep("wait", s.name)
        return InitStep("start", s.name)
    return InitStep("done")


def restart_policy_for(pod_policy: str, container: Container, *, init: bool) -> str:
    """The restart policy one container follows: a sidecar always restarts; a plain init container restarts
    on failure unless the pod's policy is Never; an app container follows the pod."""
    if init and container.restart_policy == "Always":
        return "Always"
    if init and pod_policy == "Always":
        return "OnFailure"
    return pod_policy


def pod_phase(*, initialized: bool, init_failed: bool, app: Sequence[tuple[Phase, int | None, bool]],
              current: str) -> str:
    """The pod's phase from its app containers' (phase, exit code, restart pending); Pending while it
    initializes, Failed when an init container failed for good."""
    if init_failed:
        return "Failed"
    if not initialized:
        return "Pending"
    if any(phase == "running" or pending for phase, _, pending in app):
        return "Running"
    if app and all(phase == "terminated" for phase, _, _ in app):
        return "Succeeded" if all(code == 0 for _, code, _ in app) else "Failed"
    return current

"""Table tests for the probe thresholds (ProbeTracker) and the container health combinator."""

from __future__ import annotations

import pytest

from meshd.model.objects import Probe, TCPSocketAction
from meshd.probe.result import ProbeResult
from meshd.probe.tracker import ProbeStatus, ProbeTracker, container_health

S, F, E = "success", "failure", "error"


def run(kind: str, outcomes: str, *, success: int = 1, failure: int = 3) -> list[str | None]:
    """Feeds outcomes (s/f/e per char); returns, per step, the new state when it changed, else None."""
    tracker = ProbeTracker(
        Probe(TCPSocketAction(80), success_threshold=success, failure_threshold=failure), kind
    )
    names = {"s": S, "f": F, "e": E}
    out: list[str | None] = []
    for i, ch in enumerate(outcomes):
        t = tracker.observe(ProbeResult(names[ch], f"#{i}", 0.001))  # type: ignore[arg-type]
        out.append(t.current if t else None)
    return out


# (kind, success threshold, failure threshold, outcomes, published changes per step)
CASES = [
    # readiness starts unknown: the first success publishes "success"
    ("readiness", 1, 3, "s", ["success"]),
    ("readiness", 1, 3, "sss", ["success", None, None]),
    ("readiness", 2, 3, "ss", [None, "success"]),
    ("readiness", 3, 1, "ssfs", [None, None, "failure", None]),  # run broken: 1 of 3 successes
    ("readiness", 1, 3, "sfffs", ["success", None, None, "failure", "success"]),
    ("readiness", 1, 1, "fs", ["failure", "success"]),  # unknown -> failure is published too
    # flapping under thresholds > 1 never publishes
    ("readiness", 2, 2, "sfsfsfsf", [None] * 8),
    ("liveness", 1, 2, "fsfsfsfs", [None] * 8),
    # flapping at thresholds 1 publishes every change
    ("readiness", 1, 1, "sfsf", ["success", "failure", "success", "failure"]),
    # liveness starts success: successes publish nothing, failureThreshold failures do
    ("liveness", 1, 3, "sssff", [None] * 5),
    ("liveness", 1, 3, "fff", [None, None, "failure"]),
    ("liveness", 1, 3, "ffsfff", [None, None, None, None, None, "failure"]),
    ("liveness", 1, 1, "f", ["failure"]),
    ("liveness", 1, 3, "ffffs", [None, None, "failure", None, "success"]),
    # errors are neither counted nor do they break a run (the kubelet throws them away)
    ("liveness", 1, 3, "fefef", [None, None, None, None, "failure"]),
    ("readiness", 2, 3, "ses", [None, None, "success"]),
    ("readiness", 1, 3, "eee", [None, None, None]),
    # startup: unknown until success, then sticky
    ("startup", 1, 3, "ffs", [None, None, "success"]),
    ("startup", 1, 3, "sffff", ["success", None, None, None, None]),
    ("startup", 1, 2, "ff", [None, "failure"]),
    ("startup", 1, 3, "fffff", [None, None, "failure", None, None]),
]


@pytest.mark.parametrize("kind,success,failure,outcomes,expected", CASES)
def test_thresholds(kind: str, success: int, failure: int, outcomes: str, expected: list[str | None]) -> None:
    assert run(kind, outcomes, success=success, failure=failure) == expected


def test_transition_carries_previous_state_and_the_completing_result() -> None:
    tracker = ProbeTracker(Probe(TCPSocketAction(80), failure_threshold=2), "liveness")
    assert tracker.observe(ProbeResult("failure", "first", 0.0)) is None
    t = tracker.observe(ProbeResult("failure", "dial tcp 10.213.0.5:80: connect: connection refused", 0.0))
    assert t is not None and (t.kind, t.previous, t.current) == ("liveness", "success", "failure")
    assert tracker.status() == ProbeStatus("failure", "dial tcp 10.213.0.5:80: connect: connection refused")


def test_last_keeps_errors_for_describe() -> None:
    tracker = ProbeTracker(Probe(TCPSocketAction(80)), "readiness")
    tracker.observe(ProbeResult("error", "port 'web' is not a containerPort name", 0.0))
    assert tracker.last is not None and tracker.last.outcome == "error" and tracker.state == "unknown"


def test_zero_thresholds_behave_as_one() -> None:
    assert run("readiness", "f", success=0, failure=0) == ["failure"]


OK, FAIL, UNK = ProbeStatus("success"), ProbeStatus("failure", "boom"), ProbeStatus("unknown")

# (running, startup, liveness, readiness) -> (ready, action, reason prefix)
HEALTH = [
    (True, None, None, None, True, None, "container is running"),
    (False, None, None, None, False, None, "container is not running"),
    (False, OK, OK, OK, False, None, "container is not running"),
    (True, None, OK, None, True, None, "container is running"),
    (True, None, None, UNK, False, None, "Readiness probe has not succeeded yet"),
    (True, None, None, OK, True, None, "Readiness probe succeeded"),
    (True, None, None, FAIL, False, None, "Readiness probe failed: boom"),
    (True, None, FAIL, OK, False, "restart", "Liveness probe failed: boom"),
    (True, None, FAIL, None, False, "restart", "Liveness probe failed: boom"),
    (True, UNK, OK, None, False, None, "Startup probe has not succeeded yet"),  # startup holds readiness
    (True, UNK, OK, OK, False, None, "Startup probe has not succeeded yet"),
    (True, FAIL, OK, UNK, False, "restart", "Startup probe failed: boom"),
    (True, OK, OK, None, True, None, "container is running"),
    (True, OK, OK, UNK, False, None, "Readiness probe has not succeeded yet"),
    (True, OK, FAIL, OK, False, "restart", "Liveness probe failed: boom"),
]


@pytest.mark.parametrize("running,startup,liveness,readiness,ready,action,reason", HEALTH)
def test_container_health(running, startup, liveness, readiness, ready, action, reason) -> None:  # type: ignore[no-untyped-def]
    health = container_health(running=running, startup=startup, liveness=liveness, readiness=readiness)
    assert (health.ready, health.action, health.reason) == (ready, action, reason)

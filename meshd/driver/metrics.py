"""Container engine call metrics: latency and errors per kind of call (the call's verb: bounded labels)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from meshd.metrics import REGISTRY

CALLS = ("ping", "network", "build", "create", "start", "stop", "remove", "inspect", "pull", "list", "exec")

DOCKER_CALL_DURATION = Histogram(
    "meshd_docker_call_duration_seconds",
    "Time one Docker engine call took, by kind of call.",
    ["call"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
DOCKER_CALL_ERRORS = Counter(
    "meshd_docker_call_errors_total", "Docker engine calls that failed, by kind of call.", ["call"],
    registry=REGISTRY,
)
for _call in CALLS:
    DOCKER_CALL_DURATION.labels(_call)
    DOCKER_CALL_ERRORS.labels(_call)


def call_kind(what: str) -> str:
    """'inspect image meshd/busybox:latest' -> 'inspect' (any unknown verb is 'other')."""
    verb = what.split(" ", 1)[0]
    return verb if verb in CALLS else "other"

"""Probe metrics on the agent registry; every label value exists from the start."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from meshd.metrics import REGISTRY

PROBE_KINDS = ("liveness", "readiness", "startup")
OUTCOMES = ("success", "failure", "error")

PROBE_TOTAL = Counter(
    "meshd_probe_total", "Probe results, by probe kind and outcome.", ["probe", "result"], registry=REGISTRY
)
PROBE_DURATION = Histogram(
    "meshd_probe_duration_seconds",
    "Time one probe took, by probe kind.",
    ["probe"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
READINESS_TRANSITIONS = Counter(
    "meshd_readiness_transitions_total", "Containers turning ready or unready.", ["to"], registry=REGISTRY
)

for _kind in PROBE_KINDS:
    PROBE_DURATION.labels(_kind)
    for _outcome in OUTCOMES:
        PROBE_TOTAL.labels(_kind, _outcome)
for _to in ("ready", "unready"):
    READINESS_TRANSITIONS.labels(_to)

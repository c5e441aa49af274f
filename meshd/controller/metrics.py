"""The controller's metrics: counters bumped where things happen, and gauges read from its state at scrape
time (a custom Collector), so the series exist from start-up and cost nothing between scrapes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from meshd.metrics import REGISTRY

if TYPE_CHECKING:
    from meshd.controller.loop import Controller

RESTART_REASONS = ("crash", "liveness", "startup", "oom", "sandbox")
PHASES = ("Pending", "Running", "Succeeded", "Failed")

CONTAINER_RESTARTS = Counter(
    "meshd_container_restarts_total", "Container restarts, by reason.", ["reason"], registry=REGISTRY
)
RECONCILES = Counter("meshd_reconciles_total", "Controller reconcile passes.", registry=REGISTRY)
RECONCILE_DURATION = Histogram(
    "meshd_reconcile_duration_seconds",
    "Time one controller reconcile pass took.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
    registry=REGISTRY,
)
for _reason in RESTART_REASONS:
    CONTAINER_RESTARTS.labels(_reason)


def restart_reason(termination_reason: str) -> str:
    """A bounded label value for why a container was restarted."""
    return {
        "OOMKilled": "oom",
        "LivenessProbeFailed": "liveness",
        "StartupProbeFailed": "startup",
        "SandboxDied": "sandbox",
    }.get(termination_reason, "crash")


class ControllerCollector(Collector):
    """Deployment replica counts, rollout state and pod phases, read from the controller when scraped."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from meshd.model.objects import Deployment

        c = self.controller
        replicas = GaugeMetricFamily(
            "meshd_deployment_replicas",
            "Replicas of a Deployment by state: desired, current, updated, ready, available.",
            labels=["namespace", "deployment", "state"],
        )
        progress = GaugeMetricFamily(
            "meshd_deployment_rollout_complete",
            "1 when the Deployment's rollout is complete, 0 while it progresses or after it failed.",
            labels=["namespace", "deployment"],
        )
        failed = GaugeMetricFamily(
            "meshd_deployment_rollout_failed",
            "1 when the Deployment's rollout exceeded its progress deadline.",
            labels=["namespace", "deployment"],
        )
        for (_kind, namespace, name), record in sorted(c.objects.items()):
            if not isinstance(record.obj, Deployment):
                continue
            status = c.deployment_status(record)
            counts = {"desired": status.desired, "current": status.current, "updated": status.updated,
                      "ready": status.ready, "available": status.available}
            for state, value in counts.items():
                replicas.add_metric([namespace, name, state], value)
            rollout = c.progress.get((namespace, name))
            progress.add_metric([namespace, name], 1 if rollout and rollout.complete else 0)
            failed.add_metric([namespace, name], 1 if rollout and rollout.failed else 0)
        phases = GaugeMetricFamily("meshd_pods", "Pods on this node by phase.", labels=["phase"])
        counted = {phase: 0 for phase in PHASES}
        for worker in c.pods.values():
            counted[worker.phase if worker.scheduled else "Pending"] = counted.get(worker.phase, 0) + 1
        for phase, value in counted.items():
            phases.add_metric([phase], value)
        yield replicas
        yield progress
        yield failed
        yield phases


def register_controller_metrics(controller: Controller) -> Collector:
    collector = ControllerCollector(controller)
    REGISTRY.register(collector)
    return collector

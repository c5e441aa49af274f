"""Wires a container's probes (meshd.probe.ContainerProber) to its pod worker: readiness changes republish
the pod; a failed liveness or startup probe asks the worker to replace the container."""

from __future__ import annotations

from typing import Any

from meshd.controller.pod import PodWorker
from meshd.model.objects import Container
from meshd.probe.describe import describe_probe, describe_result
from meshd.probe.exec import exec_runner
from meshd.probe.worker import ContainerProber
from meshd.tasks import BACKGROUND


class ProberAdapter:
    def __init__(self, worker: PodWorker, container: Container, driver: Any) -> None:
        status = worker.containers[container.name]
        assert worker.address is not None and status.id is not None
        self._prober = ContainerProber(
            container,
            host=worker.address,
            exec_run=exec_runner(driver, status.id),
            on_change=lambda ready, reason: worker.probe_changed(),
            on_restart=lambda reason: worker.request_restart(container.name, _reason_of(reason), reason),
            on_failure=lambda reason: worker.probe_changed(),  # the pod's Unhealthy event
            name=f"{worker.namespace}/{worker.name}/{container.name}",
        )
        self._prober.start()

    @property
    def ready(self) -> bool:
        return self._prober.ready

    @property
    def reason(self) -> str:
        return self._prober.reason

    def stop(self) -> None:
        BACKGROUND.spawn(self._prober.stop(), name="stop prober")

    def describe(self) -> list[dict[str, Any]]:
        """What a pod object shows of its probes: no durations, so a pod changes (and a watch sees MODIFIED)
        only when a probe's outcome or message does, not on every period."""
        return [
            {"type": r.kind, "probe": describe_probe(r.probe), "state": r.state,
             "last": describe_result(r.last, timed=False)}
            for r in self._prober.reports()
        ]


def _reason_of(message: str) -> str:
    lowered = message.lower()
    if lowered.startswith("startup"):
        return "StartupProbeFailed"
    return "LivenessProbeFailed" if "liveness" in lowered else "Unhealthy"


def prober_factory(driver: Any):
    def make(worker: PodWorker, container: Container) -> ProberAdapter | None:
        if not (container.liveness_probe or container.readiness_probe or container.startup_probe):
            return None
        return ProberAdapter(worker, container, driver)

    return make

"""The kubelet's Events for a pod's containers, so `kubectl describe pod` says why a pod does not run: Created and
Started, Failed (an image that does not pull, a missing ConfigMap or Secret), BackOff (pulling, or restarting a
crashed container), Unhealthy (a probe that fails) and Killing (a liveness or startup probe that failed).

`container_events` is the pure decision: what changed between two looks at a container, as (type, reason,
message). `PodEventRecorder` looks at a pod each time its worker publishes a change and writes the events into
the controller's event log."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from meshd.controller.events import EventLog
from meshd.controller.pod import pod_uid_of

PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName")


@dataclass(frozen=True)
class ContainerLook:
    """What one look at a container sees."""

    name: str
    image: str
    id: str | None
    phase: str  # waiting | running | terminated
    reason: str
    message: str
    restart_count: int
    probe: str  # what the probes say ("Readiness probe failed: ...", "Readiness probe succeeded"), "" for none


Event = tuple[str, str, str]  # type, reason, message


def container_events(before: ContainerLook | None, now: ContainerLook, *, pod: str) -> list[Event]:
    """The Events a change of one container makes, as the kubelet words them (`pod`: NAME_NAMESPACE(uid))."""
    out: list[Event] = []
    started = before is not None and now.phase == "running" and now.id and before.id != now.id  # not adopted
    if started:
        out += [("Normal", "Created", f"Created container: {now.name}"),
                ("Normal", "Started", f"Started container {now.name}")]
    waiting_anew = now.phase == "waiting" and (before is None or (before.phase, before.reason, before.message)
                                                != (now.phase, now.reason, now.message))
    if waiting_anew and now.reason in PULL_FAILURES:
        if now.reason == "ImagePullBackOff":
            out += [("Normal", "BackOff", f'Back-off pulling image "{now.image}"'),
                    ("Warning", "Failed", "Error: ImagePullBackOff")]
        else:
            out += [("Warning", "Failed", f'Failed to pull image "{now.image}": {now.message}'),
                    ("Warning", "Failed", f"Error: {now.reason}")]
    elif waiting_anew and now.reason in ("CreateContainerConfigError", "CreateContainerError"):
        out.append(("Warning", "Failed", f"Error: {now.message or now.reason}"))
    crashed_again = before is not None and now.restart_count > before.restart_count
    if now.reason == "CrashLoopBackOff" and (crashed_again or before is None or before.reason != now.reason):
        out.append(("Warning", "BackOff", f"Back-off restarting failed container {now.name} in pod {pod}"))
    if " probe failed" in now.probe and (before is None or before.probe != now.probe):
        out.append(("Warning", "Unhealthy", now.probe))
        for kind in ("Liveness", "Startup"):
            if now.probe.startswith(f"{kind} probe failed"):
                out.append(("Normal", "Killing",
                            f"Container {now.name} failed {kind.lower()} probe, will be restarted"))
    return out


def _pod_ref(worker: Any) -> str:
    uid = getattr(worker, "uid", "") or pod_uid_of(worker.namespace, worker.name, worker.created)
    return f"{worker.name}_{worker.namespace}({uid})"


class PodEventRecorder:
    """Remembers the last look at each pod's containers (for as long as its worker lives) and records what
    changed since."""

    def __init__(self, events: EventLog) -> None:
        self._events = events
        self._seen: weakref.WeakKeyDictionary[Any, dict[str, ContainerLook]] = weakref.WeakKeyDictionary()

    def observe(self, worker: Any) -> None:
        """One look at a pod worker (meshd.controller.pod.PodWorker): records the Events of what changed."""
        if worker.terminating:
            return
        before = self._seen.get(worker, {})
        now = {name: ContainerLook(name, status.image, status.id, status.phase, status.reason, status.message,
                                   status.restart_count, worker.probe_complaint(name))
               for name, status in worker.containers.items()}
        self._seen[worker] = now
        for name, look in now.items():
            for type_, reason, message in container_events(before.get(name), look, pod=_pod_ref(worker)):
                self._events.record("Pod", worker.namespace, worker.name, type_, reason, message)


__all__ = ["ContainerLook", "PodEventRecorder", "container_events"]

"""Which container of a pod a `log`, `exec` or `attach` request means, as kubectl names it: `container=`, else
the `kubectl.kubernetes.io/default-container` annotation, else the first. A bad choice is a ValueError (400)."""

from __future__ import annotations

from meshd.controller.pod import PodWorker

DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"


def container_name(worker: PodWorker, requested: str | None) -> str:
    default = worker.annotations.get(DEFAULT_CONTAINER)
    name = requested or (default if default in worker.containers else worker.spec.containers[0].name)
    if name not in worker.containers:
        names = ", ".join(worker.containers)
        raise ValueError(f"container {name} is not valid for pod {worker.name}; choose one of: [{names}]")
    return name


def running_container_id(worker: PodWorker, requested: str | None) -> str:
    """The id of the container's running instance; one not running is a ValueError as the API server words it."""
    name = container_name(worker, requested)
    status = worker.containers[name]
    if not status.id or status.phase != "running":
        raise ValueError(f"unable to upgrade connection: container not found (\"{name}\"): container {name} in "
                         f"pod {worker.name} is not running ({status.reason or status.phase})")
    return status.id

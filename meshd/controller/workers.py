"""The pods one node runs: a PodWorker each, made with the labels its containers carry (what adoption after a
restart reads back), stopped with a reason (an Event) and forgotten once stopped, and a user's bare Pod kept in line
with its object (pods are immutable: a changed spec replaces the pod). The decisions are pure functions."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from meshd.controller.adoption import LABEL_CREATED
from meshd.controller.pod import PodIdentity, PodWorker
from meshd.controller.sets import SET_KINDS
from meshd.driver.base import (
    LABEL_AGENT,
    LABEL_MANAGED,
    LABEL_NAMESPACE,
    LABEL_OWNER,
    LABEL_OWNER_KIND,
    LABEL_POD,
    LABEL_REPLICASET,
    LABEL_TEMPLATE_HASH,
    ObservedContainer,
)
from meshd.model.objects import Pod, PodSpec

if TYPE_CHECKING:
    from meshd.controller.loop import Controller


def sandbox_labels(identity: PodIdentity, *, agent_id: str, created: float) -> dict[str, str]:
    """The labels of a pod's containers: whose pod it is, so an agent that restarts adopts it. Pure."""
    return {
        LABEL_MANAGED: "true",
        LABEL_AGENT: agent_id,
        LABEL_NAMESPACE: identity.namespace,
        LABEL_POD: identity.name,
        LABEL_OWNER: identity.owner,
        LABEL_OWNER_KIND: identity.owner_kind,
        LABEL_REPLICASET: identity.replicaset,
        LABEL_TEMPLATE_HASH: identity.template_hash,
        LABEL_CREATED: f"{created:.3f}",
    }


class BarePod(enum.Enum):
    CREATE = "create"  # no pod runs for the object: one is made
    REPLACE = "replace"  # its pod runs another spec: it stops (and the next pass makes the new one)
    KEEP = "keep"  # its pod runs it, or stops already


def bare_pod_action(running: PodSpec | None, terminating: bool, wanted: PodSpec) -> BarePod:
    """What a user's Pod object asks of its pod (`running`: the spec its pod runs, None without a pod). Pure."""
    if running is None:
        return BarePod.CREATE
    if running != wanted and not terminating:
        return BarePod.REPLACE
    return BarePod.KEEP


def ensure_bare_pod(c: Controller, pod: Pod, created: float) -> None:
    key = (pod.metadata.namespace, pod.metadata.name)
    if c.cluster is not None:
        return c.cluster.ensure_bare(*key)  # bound once; its node's kubelet runs it
    worker = c.pods.get(key)
    action = bare_pod_action(worker.spec if worker else None, worker.terminating if worker else False, pod.spec)
    if action is BarePod.REPLACE and worker is not None:
        c._terminate(worker, "spec changed")
    elif action is BarePod.CREATE:
        identity = PodIdentity(pod.metadata.namespace, pod.metadata.name, "Pod", pod.metadata.name)
        c._new_worker(identity, pod.spec, dict(pod.metadata.labels), dict(pod.metadata.annotations), created=created)


def new_worker(c: Controller, identity: PodIdentity, spec: PodSpec, labels: dict[str, str],
               annotations: dict[str, str], *, created: float,
               adopt: list[ObservedContainer] | None = None) -> PodWorker:
    """This node's worker of a pod, registered (its record in the registry); one adopting running containers
    starts at once (it runs already: no admission), any other waits for admission (meshd.controller.admission)."""
    worker = PodWorker(
        identity=identity,
        spec=spec,
        labels=labels,
        annotations=annotations,
        driver=c.driver,
        registry=c.registry,
        sandbox_labels=sandbox_labels(identity, agent_id=c.agent_id, created=created),
        dns_search=(f"{identity.namespace}.svc.{c.zone}", f"svc.{c.zone}", c.zone),
        backoff=c.backoff,
        on_change=c._pod_changed,
        drain=c._drain,
        make_prober=c._make_prober,
        created=created,
        adopt=adopt,
        clock=c._clock,
        node_capacity=(c.capacity.cpu_millicores, c.capacity.memory_bytes),
        config=c.pod_config,
    )
    c.pods[(identity.namespace, identity.name)] = worker
    c.registry.upsert_pod(worker.record())
    if adopt:
        worker.volume_mounts = c.volume_controller.mounts_for(worker, check=False)[0]
        worker.start()
    return worker


def pod_wanted(c: Controller, worker: PodWorker) -> bool:
    """Whether the pod's owner still wants it (else it stops: "owner deleted")."""
    identity = worker.identity
    if identity.owner_kind == "Job":
        return c.batch.pod_wanted(worker)
    if identity.owner_kind in SET_KINDS:
        return c.sets.wanted(identity)
    if identity.replicaset:
        return (identity.namespace, identity.replicaset) in c.replicasets
    return ("Pod", identity.namespace, identity.name) in c.objects


def terminate(c: Controller, worker: PodWorker, why: str) -> None:
    """Stops this node's pod (a Killing Event says why); once stopped it is forgotten, and the controllers kicked."""
    if worker.terminating:
        return
    c.events.record("Pod", worker.namespace, worker.name, "Normal", "Killing", f"Stopping pod: {why}")
    worker.terminate()

    async def forget() -> None:
        await worker.wait_done()
        if c.pods.get((worker.namespace, worker.name)) is worker:
            if c.pod_objects is not None:
                c.pod_objects.stopped(worker)
            del c.pods[(worker.namespace, worker.name)]
            c.registry.delete_pod(worker.namespace, worker.name)
            c._notify("Pod", worker.namespace, worker.name)
            c.kick()

    c._tasks.spawn(forget(), name=f"forget {worker.namespace}/{worker.name}")


__all__ = ["BarePod", "bare_pod_action", "ensure_bare_pod", "new_worker", "pod_wanted", "sandbox_labels", "terminate"]

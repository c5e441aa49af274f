"""Admission on this node (the kubelet's side of scheduling on one machine): pending pods start in creation order
while their resource requests, the node's --max-pods and their hostPorts fit, once their volumes are ready and,
where the node's pods are objects of its store (meshd.cluster.podobjects), once their Pod object is stored (a pod
runs only once the store holds it, so an agent that restarts finds every pod there: meshd.controller.adoption);
the hostPorts of the pods that run are published for the node's sidecar."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from meshd.controller.pod import PodWorker
from meshd.controller.volumes.provisioner import CHECKING
from meshd.external.hostports import UNSCHEDULABLE as HOST_PORTS_TAKEN
from meshd.external.hostports import HostPort, collides, host_port_key, host_port_service, host_ports
from meshd.model.objects import PodSpec
from meshd.scheduler import PodInfo, Scheduler
from meshd.scheduler.local import local_node

if TYPE_CHECKING:
    from meshd.controller.loop import Controller


def requests(spec: PodSpec) -> tuple[int, int]:
    cpu = sum((c.resources.requests.cpu_millicores or 0) for c in spec.containers)
    mem = sum((c.resources.requests.memory_bytes or 0) for c in spec.containers)
    return cpu, mem


def object_stored(obj: Mapping[str, Any] | None, *, uid: str, bare: bool) -> bool:
    """Whether a pod's Pod object is in the store, so its worker may start: a user's bare Pod's is the user's; a
    controller's pod's must be its own (its uid), not an older pod's of that name still going. Pure."""
    if obj is None:
        return False
    return bare or (obj.get("metadata") or {}).get("uid") == uid


def _object_stored(c: Controller, worker: PodWorker) -> bool:
    if c.pod_objects is None:
        return True  # (a controller without its pods' objects: unit tests, the cluster's kubelet admits its own)
    obj = c.store.get("Pod", worker.namespace, worker.name)
    return object_stored(obj, uid=worker.uid, bare=worker.identity.owner_kind == "Pod")


def volumes_ready(c: Controller, worker: PodWorker) -> bool:
    """Whether the pod's claims and hostPaths are ready (it then gets their sources); else it stays Pending."""
    if not worker.spec.volumes:
        return True
    worker.volume_mounts, problem = c.volume_controller.mounts_for(worker)
    if not problem:
        return True
    if problem == CHECKING:
        return False  # a hostPath is being looked at: the check kicks the controller when done
    message = f"0/1 nodes are available: {problem}."
    if worker.message != message:
        worker.reason, worker.message = "Unschedulable", message
        c.events.record("Pod", worker.namespace, worker.name, "Warning", "FailedScheduling", message)
        c._notify("Pod", worker.namespace, worker.name)
    c._call_at(c._clock() + 2)  # a hostPath may appear without anything else changing
    return False


def schedule_pending(c: Controller) -> None:
    """Admits pending pods in creation order through the scheduler's filters on this one node (requests against
    capacity, --max-pods, nodeSelector and node affinity, taints, pod (anti-)affinity, topology spread), then
    the node's hostPorts; a pod that does not fit waits with Kubernetes' words ("0/1 nodes are available: ...")."""
    pending = sorted((w for w in c.pods.values() if not w.scheduled and not w.terminating), key=lambda w: w.created)
    if not pending:  # the common pass: nothing to index
        publish_host_ports(c)
        return
    node = local_node(c.registry.node or "meshd", cpu_millicores=c.capacity.cpu_millicores,
                      memory_bytes=c.capacity.memory_bytes, pods=c.capacity.pods)
    running = [w for w in c.pods.values()
               if w.scheduled and not w.done.is_set() and w.phase not in ("Succeeded", "Failed")]
    scheduler = Scheduler([node], (_pod_info(w, node.name) for w in running))
    used_ports: list[HostPort] = [port for w in running for port in host_ports(w.spec, c.external)]
    unwritten = False
    for worker in pending:
        if not _object_stored(c, worker):
            unwritten = True  # its object is written next (its flush kicks the controller again)
            continue
        if not volumes_ready(c, worker):
            continue
        pod = _pod_info(worker)
        placement = scheduler.place(pod)
        message = placement.message if placement.node is None else ""
        wanted = host_ports(worker.spec, c.external)
        if not message and wanted and collides(wanted, used_ports):
            message = f"0/1 nodes are available: 1 {HOST_PORTS_TAKEN}."
        if message:
            if worker.message != message:
                worker.reason, worker.message = "Unschedulable", message
                c.events.record("Pod", worker.namespace, worker.name, "Warning", "FailedScheduling", message)
                c._notify("Pod", worker.namespace, worker.name)
            continue
        scheduler.add(replace(pod, node=node.name))
        used_ports.extend(wanted)
        worker.reason = worker.message = ""
        worker.start()
    if unwritten:
        c.pod_objects.kick()
    publish_host_ports(c)


def _pod_info(worker: PodWorker, node: str = "") -> PodInfo:
    return PodInfo(worker.namespace, worker.name, worker.labels, worker.spec, node=node)


def publish_host_ports(c: Controller) -> None:
    """The hostPorts of every scheduled pod that has not ended, for the node's sidecar to serve (a hostNetwork
    pod listens on the host itself: its hostPorts only count for scheduling)."""
    want = {}
    for worker in c.pods.values():
        serve = worker.scheduled and not worker.done.is_set() and not worker.spec.host_network
        ports = host_ports(worker.spec, c.external) if serve else ()
        if ports:
            want[host_port_key(worker.namespace, worker.name)] = (worker.name, ports)
    for key in [k for k in c._host_port_keys if k not in want]:
        c.registry.delete_service(key)
    for key, (pod, ports) in want.items():
        c.registry.upsert_service(host_port_service(key.namespace, pod, ports), pod=pod)
    c._host_port_keys = set(want)


__all__ = ["object_stored", "publish_host_ports", "requests", "schedule_pending", "volumes_ready"]

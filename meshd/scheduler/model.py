"""What the scheduler sees: nodes (labels, taints, allocatable), pods (labels, spec, node) and its answer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshd.external.hostports import HostPort
from meshd.manifests.quantity import QuantityError, parse_cpu, parse_memory
from meshd.model.objects import Container, PodSpec

HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
DEFAULT_CPU_REQUEST = 100  # millicores: what scoring counts for a container requesting none (Kubernetes')
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024


@dataclass(frozen=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"  # NoSchedule | PreferNoSchedule | NoExecute


@dataclass(frozen=True)
class NodeInfo:
    """A node as the scheduler sees it: its labels, taints and allocatable resources."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    cpu_millicores: int = 0  # allocatable; 0 = unknown (no limit)
    memory_bytes: int = 0
    pods: int = 110
    taints: tuple[Taint, ...] = ()
    ready: bool = True
    unschedulable: bool = False

    @classmethod
    def from_node(cls, node: Mapping[str, Any], *, ready: bool = True) -> NodeInfo:
        """From a `v1 Node` object (status.allocatable, spec.taints, spec.unschedulable)."""
        meta, spec, status = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
        allocatable = status.get("allocatable") or {}
        taints = tuple(Taint(str(t.get("key", "")), str(t.get("value") or ""), str(t.get("effect") or "NoSchedule"))
                       for t in spec.get("taints") or [])
        return cls(name=meta.get("name", ""), labels=dict(meta.get("labels") or {}),
                   cpu_millicores=_quantity(parse_cpu, allocatable.get("cpu")),
                   memory_bytes=_quantity(parse_memory, allocatable.get("memory")),
                   pods=_count(allocatable.get("pods")), taints=taints, ready=ready,
                   unschedulable=bool(spec.get("unschedulable")))

    def effective_labels(self) -> Mapping[str, str]:
        """The labels, with kubernetes.io/hostname as every kubelet sets it."""
        if HOSTNAME in self.labels:
            return self.labels
        return {**self.labels, HOSTNAME: self.name}

    def effective_taints(self) -> tuple[Taint, ...]:
        """The taints, plus node.kubernetes.io/unreachable:NoSchedule on a node that is not Ready (its lease
        expired: its condition is Unknown, and the node lifecycle controller taints it so)."""
        if self.ready or any(t.key in (NOT_READY, UNREACHABLE) and t.effect == "NoSchedule" for t in self.taints):
            return self.taints
        return (Taint(UNREACHABLE, "", "NoSchedule"), *self.taints)


def _quantity(parse: Any, value: Any) -> int:
    try:
        return int(parse(str(value))) if value is not None else 0
    except QuantityError:
        return 0


def _count(value: Any) -> int:
    try:
        return int(str(value)) if value is not None else 110
    except ValueError:
        return 110


@dataclass(frozen=True)
class PodInfo:
    """A pod to place, or one placed already (`node` set). Placed pods are the ones still holding their node
    (not Succeeded, Failed or deleted)."""

    namespace: str
    name: str
    labels: Mapping[str, str]
    spec: PodSpec
    node: str = ""
    # the selector of the pod's ReplicaSet/StatefulSet (or Service): the pods its default spreading counts
    # (Kubernetes' system default topology spread, once SelectorSpread); None: the pod's own labels
    spread_selector: Mapping[str, str] | None = None
    # the nodes its bound volumes live on (local volumes' nodeAffinity); None: its volumes tie it to no node
    volume_nodes: frozenset[str] | None = None


@dataclass(frozen=True)
class Placement:
    node: str | None  # None: no node fits; `message` says why, as Kubernetes words it
    message: str = ""
    scores: tuple[tuple[str, int], ...] = ()  # each feasible node's total score, by name (when scored)


def host_ports(pod: PodInfo) -> tuple[HostPort, ...]:
    """The (hostIP, hostPort, protocol) the pod claims on its node (hostIP 0.0.0.0 when unset)."""
    return tuple(dict.fromkeys(HostPort(p.host_ip or "0.0.0.0", p.host_port, p.protocol, p.container_port)
                               for c in pod.spec.containers for p in c.ports if p.host_port))


def requests(spec: PodSpec) -> tuple[int, int]:
    """The pod's cpu (millicores) and memory (bytes) requests, as Kubernetes sums them: the app containers and
    native sidecars together, or the largest init container's peak if that is more."""
    return _pod_requests(spec, nonzero=False)


def nonzero_requests(spec: PodSpec) -> tuple[int, int]:
    """The requests scoring counts: a container asking for no cpu or memory counts 100m and 200Mi."""
    return _pod_requests(spec, nonzero=True)


def _container(c: Container, nonzero: bool) -> tuple[int, int]:
    cpu, mem = c.resources.requests.cpu_millicores, c.resources.requests.memory_bytes
    if nonzero:
        return (DEFAULT_CPU_REQUEST if cpu is None else cpu, DEFAULT_MEMORY_REQUEST if mem is None else mem)
    return cpu or 0, mem or 0


def _pod_requests(spec: PodSpec, *, nonzero: bool) -> tuple[int, int]:
    cpu = mem = 0
    for c in spec.containers:
        c_cpu, c_mem = _container(c, nonzero)
        cpu, mem = cpu + c_cpu, mem + c_mem
    sidecar_cpu = sidecar_mem = init_cpu = init_mem = 0
    for c in spec.init_containers:
        c_cpu, c_mem = _container(c, nonzero)
        if c.restart_policy == "Always":
            sidecar_cpu, sidecar_mem = sidecar_cpu + c_cpu, sidecar_mem + c_mem
            c_cpu, c_mem = sidecar_cpu, sidecar_mem
        else:
            c_cpu, c_mem = c_cpu + sidecar_cpu, c_mem + sidecar_mem
        init_cpu, init_mem = max(init_cpu, c_cpu), max(init_mem, c_mem)
    return max(cpu + sidecar_cpu, init_cpu), max(mem + sidecar_mem, init_mem)

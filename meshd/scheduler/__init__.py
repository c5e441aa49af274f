"""The scheduler: which node a pod runs on. Pure: nodes and the pods already placed in, a Placement out.

The interface the controller calls (meshd.controller binds pods with it in a cluster). Filters and scores
grow here, as Kubernetes' scheduler framework has them; this first cut filters on readiness, cordoning and
resource requests, and picks the node running the fewest pods."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshd.model.objects import PodSpec
from meshd.manifests.quantity import QuantityError, parse_cpu, parse_memory


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
                   pods=int(allocatable.get("pods") or 110), taints=taints, ready=ready,
                   unschedulable=bool(spec.get("unschedulable")))


def _quantity(parse: Any, value: Any) -> int:
    try:
        return int(parse(str(value))) if value is not None else 0
    except QuantityError:
        return 0


@dataclass(frozen=True)
class PodInfo:
    """A pod to place, or one placed already (`node` set)."""

    namespace: str
    name: str
    labels: Mapping[str, str]
    spec: PodSpec
    node: str = ""


@dataclass(frozen=True)
class Placement:
    node: str | None  # None: no node fits; `message` says why, as Kubernetes words it
    message: str = ""


def requests(spec: PodSpec) -> tuple[int, int]:
    """The pod's cpu (millicores) and memory (bytes) requests."""
    cpu = sum((c.resources.requests.cpu_millicores or 0) for c in spec.containers)
    mem = sum((c.resources.requests.memory_bytes or 0) for c in spec.containers)
    return cpu, mem


def schedule(pod: PodInfo, nodes: Sequence[NodeInfo], placed: Sequence[PodInfo]) -> Placement:
    """The node for `pod` among `nodes`, given the pods `placed` on them; or why none fits."""
    cpu, mem = requests(pod.spec)
    reasons: dict[str, int] = {}
    fits: list[tuple[int, str]] = []
    for node in nodes:
        on_node = [p for p in placed if p.node == node.name]
        used_cpu = sum(requests(p.spec)[0] for p in on_node)
        used_mem = sum(requests(p.spec)[1] for p in on_node)
        why = []
        if not node.ready:
            why.append("node(s) were not ready")
        elif node.unschedulable:
            why.append("node(s) were unschedulable")
        else:
            if cpu and node.cpu_millicores and used_cpu + cpu > node.cpu_millicores:
                why.append("Insufficient cpu")
            if mem and node.memory_bytes and used_mem + mem > node.memory_bytes:
                why.append("Insufficient memory")
            if len(on_node) >= node.pods:
                why.append("Too many pods")
        for reason in why:
            reasons[reason] = reasons.get(reason, 0) + 1
        if not why:
            fits.append((len(on_node), node.name))
    if fits:
        return Placement(min(fits)[1])
    detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    return Placement(None, f"0/{len(nodes)} nodes are available: {detail}." if detail
                     else "0/0 nodes are available.")


__all__ = ["NodeInfo", "PodInfo", "Placement", "Taint", "requests", "schedule"]

"""The scheduler on one node: a standalone agent admits its pending pods through the same filters, and words why
one waits as Kubernetes does ("0/1 nodes are available: 1 Insufficient cpu."). For the controller's admission
(meshd/controller/loop.py `_schedule_pending`):

    node = local_node(registry.node, cpu_millicores=capacity.cpu_millicores,
                      memory_bytes=capacity.memory_bytes, pods=capacity.pods)
    placement = local_placement(PodInfo(ns, name, labels, spec), node, running)  # running: PodInfo, node set
    if placement.node is None: ... placement.message is the FailedScheduling event's message

or, admitting several in a row, `Scheduler([node], running)` and `.bind(pod)` for each."""

from __future__ import annotations

import platform
from dataclasses import replace
from collections.abc import Iterable, Mapping

from meshd.scheduler.model import HOSTNAME, NodeInfo, Placement, PodInfo, Taint
from meshd.scheduler.state import Scheduler


def local_node(name: str, *, cpu_millicores: int, memory_bytes: int, pods: int = 110,
               labels: Mapping[str, str] | None = None, taints: tuple[Taint, ...] = ()) -> NodeInfo:
    """This agent's node, labelled as meshd.api.cluster.node() labels it (hostname, os, arch) unless `labels`."""
    if labels is None:
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        labels = {HOSTNAME: name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch}
    return NodeInfo(name=name, labels=dict(labels), cpu_millicores=cpu_millicores, memory_bytes=memory_bytes,
                    pods=pods, taints=taints)


def local_placement(pod: PodInfo, node: NodeInfo, running: Iterable[PodInfo]) -> Placement:
    """Whether `pod` fits on `node` beside the pods `running` there (their `node` is ignored: all run here)."""
    return Scheduler([node], (replace(p, node=node.name) for p in running)).place(pod)

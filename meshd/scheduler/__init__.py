"""The scheduler: which node a pod runs on. Pure: nodes and the pods already placed in, a Placement out.

Filters and scores as Kubernetes' default scheduler profile has them (meshd/scheduler/filters.py, scores.py):
NodeUnschedulable, NodeName, TaintToleration, NodeAffinity (nodeSelector too), NodePorts, NodeResourcesFit,
PodTopologySpread and InterPodAffinity filter; TaintToleration (PreferNoSchedule), NodeAffinity (preferred),
LeastAllocated, BalancedAllocation, PodTopologySpread (ScheduleAnyway, or the system default spreading of a
controller's pods) and InterPodAffinity (preferred) score. Equal scores go to the first node by name.

`schedule()` is the simple entry (it brings the previous call's index up to date with `placed`: a pass over
it); `Scheduler` keeps that index itself (`place`, `add`, `remove`, `bind`) for a controller placing many pods."""

from __future__ import annotations

from collections.abc import Sequence

from meshd.scheduler.local import local_placement
from meshd.scheduler.model import NodeInfo, Placement, PodInfo, Taint, nonzero_requests, requests
from meshd.scheduler.reuse import Reuse
from meshd.scheduler.state import Scheduler, fit_error


_REUSE = Reuse()


def schedule(pod: PodInfo, nodes: Sequence[NodeInfo], placed: Sequence[PodInfo]) -> Placement:
    """The node for `pod` among `nodes`, given the pods `placed` on them; or why none fits. Keeps the last
    call's index and brings it up to date with `placed` (same answer as a fresh `Scheduler(nodes, placed)`)."""
    with _REUSE.lock:
        return _REUSE.scheduler(nodes, placed).place(pod)


__all__ = ["NodeInfo", "PodInfo", "Placement", "Scheduler", "Taint", "fit_error", "local_placement",
           "nonzero_requests", "requests", "schedule"]

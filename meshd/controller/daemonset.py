"""A DaemonSet's decisions as pure functions: one pod on every node, and how a RollingUpdate replaces them.

Kubernetes' pkg/controller/daemon (daemon_controller.go, update.go) is the model:
- every node runs one pod of the DaemonSet: a node without one gets one (at the update revision), a node with
  more than one keeps the newest at the update revision (else the newest) and the others go;
- RollingUpdate with maxUnavailable: old pods are deleted while the unavailable pods (on all nodes) stay within
  maxUnavailable, unavailable ones first; with maxSurge: a node's new pod starts beside the old one, which goes
  once the new one is available; OnDelete: only pods a user deletes are replaced.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class DaemonPod:
    name: str
    revision: str
    created: float
    available: bool = False
    ready: bool = False
    terminating: bool = False


@dataclass(frozen=True)
class DaemonSetPlan:
    create: tuple[str, ...] = ()  # node names, a pod at the update revision on each
    delete: tuple[str, ...] = ()  # pod names


@dataclass(frozen=True)
class DaemonSetCounts:
    desired: int
    current: int
    ready: int
    updated: int
    available: int
    unavailable: int
    misscheduled: int = 0


def resolve_count(value: int | str, total: int, *, round_up: bool) -> int:
    """maxUnavailable/maxSurge: an absolute count or a percentage of the nodes (as Kubernetes rounds them)."""
    if isinstance(value, int):
        return value
    fraction = float(value.rstrip("%")) / 100 * total
    return math.ceil(fraction) if round_up else math.floor(fraction)


def plan_daemonset(
    *,
    nodes: Sequence[str],
    pods: Mapping[str, Sequence[DaemonPod]],
    update_revision: str,
    on_delete: bool,
    max_unavailable: int | str,
    max_surge: int | str,
) -> DaemonSetPlan:
    """What to do in this pass; `pods` holds each node's pods (terminating ones too)."""
    create: list[str] = []
    delete: list[str] = []
    live: dict[str, list[DaemonPod]] = {n: [p for p in pods.get(n, ()) if not p.terminating] for n in nodes}
    for node in nodes:
        here = live[node]
        if not here:
            if not any(p.terminating for p in pods.get(node, ())) or max_surge_of(max_surge, nodes):
                create.append(node)
            continue
        keep = _keep(here, update_revision, surging=not on_delete and max_surge_of(max_surge, nodes) > 0)
        delete.extend(p.name for p in here if p not in keep)
        live[node] = keep
    if on_delete:
        return DaemonSetPlan(tuple(create), tuple(delete))
    surge = max_surge_of(max_surge, nodes)
    if surge:
        budget = surge - sum(1 for n in nodes if len(live[n]) > 1)
        for node in nodes:
            here = live[node]
            new = [p for p in here if p.revision == update_revision]
            old = [p for p in here if p.revision != update_revision]
            if not old:
                continue
            if not new:
                if budget > 0 or not any(p.available for p in old):
                    create.append(node)
                    budget -= 1
            elif all(p.available for p in new):
                delete.extend(p.name for p in old)
        return DaemonSetPlan(tuple(create), tuple(delete))
    limit = max(resolve_count(max_unavailable, len(nodes), round_up=False), 1)
    unavailable = sum(1 for n in nodes if not any(p.available for p in live[n]))
    old_pods = sorted((p for n in nodes for p in live[n] if p.revision != update_revision),
                      key=lambda p: (p.available, p.created))
    for pod in old_pods:
        if not pod.available:
            delete.append(pod.name)  # unavailable already: replacing it costs nothing
        elif unavailable < limit:
            delete.append(pod.name)
            unavailable += 1
    return DaemonSetPlan(tuple(create), tuple(delete))


def max_surge_of(max_surge: int | str, nodes: Sequence[str]) -> int:
    return resolve_count(max_surge, len(nodes), round_up=True)


def _keep(pods: list[DaemonPod], update_revision: str, *, surging: bool) -> list[DaemonPod]:
    """A node's pods to keep: the newest at the update revision and, while surging, the newest old one."""
    new = sorted((p for p in pods if p.revision == update_revision), key=lambda p: p.created)
    old = sorted((p for p in pods if p.revision != update_revision), key=lambda p: p.created)
    if new and (not surging or not old):
        return new[-1:]
    if new and surging:
        return [old[-1], new[-1]]
    return old[-1:]


def daemonset_counts(*, nodes: Sequence[str], pods: Mapping[str, Sequence[DaemonPod]],
                     update_revision: str) -> DaemonSetCounts:
    live = {n: [p for p in pods.get(n, ()) if not p.terminating] for n in nodes}
    scheduled = [n for n in nodes if live[n]]
    available = sum(1 for n in nodes if any(p.available for p in live[n]))
    return DaemonSetCounts(
        desired=len(nodes),
        current=len(scheduled),
        ready=sum(1 for n in nodes if any(p.ready for p in live[n])),
        updated=sum(1 for n in nodes if any(p.revision == update_revision for p in live[n])),
        available=available,
        unavailable=len(nodes) - available,
    )


__all__ = ["DaemonPod", "DaemonSetCounts", "DaemonSetPlan", "daemonset_counts", "plan_daemonset",
           "resolve_count"]

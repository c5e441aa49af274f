"""The controllers' decisions as pure functions: which pods a ReplicaSet creates or removes, and how a
Deployment moves replicas between its ReplicaSets (RollingUpdate with maxSurge/maxUnavailable, or Recreate).

Kubernetes' pkg/controller/deployment (rolling.go, recreate.go) and replica_set.go are the model.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PodView:
    """What scaling decisions need to know of one pod."""

    name: str
    created: float
    scheduled: bool = True  # has a sandbox (not Pending for resources)
    ready: bool = False
    available: bool = False  # ready for at least minReadySeconds
    restarts: int = 0
    node: str = ""  # in a cluster, the node it is bound to


def plan_replicaset(replicas: int, pods: Sequence[PodView]) -> tuple[int, tuple[str, ...]]:
    """(how many pods to create, which pods to delete) to bring a ReplicaSet to `replicas`.

    Deletion order as Kubernetes': unscheduled first, then not ready, then those on the node running the most of
    them (so a scale-down keeps the spread), then more restarts, then the newest.
    """
    diff = replicas - len(pods)
    if diff >= 0:
        return diff, ()
    left = list(pods)
    on_node = Counter(p.node for p in left)
    deleted = []
    for _ in range(-diff):
        victim = min(left, key=lambda p: (p.scheduled, p.ready, -on_node[p.node], -p.restarts, -p.created))
        left.remove(victim)
        on_node[victim.node] -= 1
        deleted.append(victim.name)
    return 0, tuple(deleted)


SLOW_START_MAX = 64  # the largest batch of pods one ReplicaSet creates in one reconcile pass


def creation_batch(missing: int, *, batch: int, room: int) -> int:
    """How many of a ReplicaSet's `missing` pods to create in this pass: at most the slow-start `batch` (1, 2,
    4, ... as Kubernetes' ReplicaSet controller creates them) and the node's `room` for pod objects."""
    return max(0, min(missing, batch, room))


def next_batch(batch: int, *, created: int, missing: int) -> int:
    """The next pass's batch: doubled after a full batch, back to 1 once nothing is missing."""
    if missing <= created:
        return 1
    return min(batch * 2, SLOW_START_MAX) if created >= batch else batch


@dataclass(frozen=True)
class ReplicaSetView:
    name: str
    revision: int
    replicas: int  # its desired count now
    pods: int  # pods that exist (not terminating)
    available: int  # available pods


def resolve_surge(value: int | str, replicas: int, *, round_up: bool) -> int:
    """maxSurge/maxUnavailable: an absolute count or a percentage of replicas (surge rounds up, unavailable down)."""
    if isinstance(value, int):
        return value
    text = value.strip()
    if text.endswith("%"):
        fraction = float(text[:-1]) / 100 * replicas
        return math.ceil(fraction) if round_up else math.floor(fraction)
    return int(text)


def plan_rollout(
    *,
    replicas: int,
    strategy: str,
    max_surge: int | str,
    max_unavailable: int | str,
    new: ReplicaSetView,
    old: Sequence[ReplicaSetView],
) -> dict[str, int]:
    """The desired replica count of every ReplicaSet of a Deployment for this step (only those that change).

    `new` is the ReplicaSet of the current template; `old` the others.
    """
    if strategy == "Recreate":
        return _changed(_plan_recreate(replicas, new, old), new, old)
    surge = resolve_surge(max_surge, replicas, round_up=True)
    unavailable = resolve_surge(max_unavailable, replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    target = {rs.name: rs.replicas for rs in (new, *old)}

    # Scale up the new ReplicaSet as far as the surge allows.
    total = sum(target.values())
    room = replicas + surge - total
    if new.replicas < replicas and room > 0:
        target[new.name] = min(replicas, new.replicas + room)
    elif new.replicas > replicas:
        target[new.name] = replicas

    # Scale down old ReplicaSets while enough pods stay available: first the pods that serve nothing anyway.
    min_available = replicas - unavailable
    new_unavailable = max(target[new.name] - new.available, 0)
    budget = sum(target.values()) - min_available - new_unavailable
    if budget > 0:
        oldest_first = sorted(old, key=lambda r: r.revision)
        for rs in oldest_first:
            unhealthy = min(max(target[rs.name] - rs.available, 0), budget)
            target[rs.name] -= unhealthy
            budget -= unhealthy
        can_remove = sum(rs.available for rs in (new, *old)) - min_available
        for rs in oldest_first:
            take = max(min(target[rs.name], can_remove), 0)
            target[rs.name] -= take
            can_remove -= take
    return _changed(target, new, old)


def _plan_recreate(replicas: int, new: ReplicaSetView, old: Sequence[ReplicaSetView]) -> dict[str, int]:
    target = {rs.name: 0 for rs in old}
    target[new.name] = replicas if all(rs.pods == 0 for rs in old) else 0
    return target


def _changed(target: dict[str, int], new: ReplicaSetView, old: Sequence[ReplicaSetView]) -> dict[str, int]:
    current = {rs.name: rs.replicas for rs in (new, *old)}
    return {name: count for name, count in target.items() if current[name] != count}


def rollout_complete(*, replicas: int, new: ReplicaSetView, old: Sequence[ReplicaSetView]) -> bool:
    """Every replica runs the new template and is available, and no old pod is left."""
    return new.replicas == replicas and new.available >= replicas and all(rs.pods == 0 for rs in old)

"""schedule()'s memory between calls: the Scheduler of the last call, brought up to date with the pods placed
now (the ones added, removed or replaced since, by identity), instead of indexing every placed pod again. The
answer is the same as from a fresh Scheduler; only the cost differs (a dict pass over `placed`). Pods are
compared by identity: a changed pod must come as a new PodInfo (they are frozen; do not mutate their labels)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from meshd.scheduler.model import NodeInfo, PodInfo
from meshd.scheduler.state import Scheduler


class Reuse:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nodes: tuple[NodeInfo, ...] | None = None
        self._state: Scheduler | None = None
        self._placed: dict[tuple[str, str], PodInfo] = {}

    def scheduler(self, nodes: Sequence[NodeInfo], placed: Iterable[PodInfo]) -> Scheduler:
        """A Scheduler holding exactly `nodes` and the bound pods of `placed` (the last of a name wins). The
        caller holds it only until its next call (use it under `lock`)."""
        current: dict[tuple[str, str], PodInfo] = {}
        for pod in placed:
            if pod.node:
                current[(pod.namespace, pod.name)] = pod
        nodes = tuple(nodes)
        state = self._state
        if state is None or nodes != self._nodes:
            state = Scheduler(nodes, current.values())
        else:
            for key, old in self._placed.items():
                if key not in current:
                    state.remove(old)
            for key, pod in current.items():
                if self._placed.get(key) is not pod:
                    state.add(pod)
        self._nodes, self._state, self._placed = nodes, state, current
        return state

    @property
    def lock(self) -> threading.Lock:
        return self._lock

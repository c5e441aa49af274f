"""Adoption on one node after an agent restart, from the store: every Pod object the store holds is a pod to keep
under its name and uid (as a cluster's kubelet adopts from its node's objects, meshd.cluster.kubelet), the
containers found are taken over by it, and one without containers (it was Pending, or stopped before it made one)
is started again under the same name, so no acknowledged pod comes back under a new one. Containers with no
object (an agent stopped before it wrote it) are adopted by their labels, as before objects. Pure decisions; the
I/O is PodObjects.adopt (meshd.cluster.podobjects)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meshd.cluster import binding

Key = tuple[str, str]
TERMINAL = ("Succeeded", "Failed")


class Adoption(enum.Enum):
    ADOPT = "adopt"  # its containers run (or ran): taken over under the object's name and uid
    START = "start"  # no container of it: started again under the object's name and uid (admitted as a new pod)
    DROP = "drop"  # being deleted, or it ended and nothing of it is left: its object goes, its containers too


def stored_pod_action(obj: Mapping[str, Any], *, containers: bool) -> Adoption:
    """What becomes of a stored Pod after a restart (`containers`: some of its containers were found). Pure."""
    if binding.deleting(obj):
        return Adoption.DROP  # it was stopping: it stops (as a cluster's kubelet removes a deleting pod's)
    if not containers and str((obj.get("status") or {}).get("phase") or "") in TERMINAL:
        return Adoption.DROP  # it ended and its containers went: nothing is run again
    return Adoption.ADOPT if containers else Adoption.START


@dataclass(frozen=True)
class AdoptionPlan:
    stored: tuple[tuple[Key, Adoption], ...] = ()  # every stored Pod, in key order, and what becomes of it
    by_labels: tuple[Key, ...] = ()  # pods whose containers run but which have no object: their labels decide


def adoption_plan(stored: Mapping[Key, Mapping[str, Any]], observed: Mapping[Key, int]) -> AdoptionPlan:
    """`stored`: the store's Pod objects by (namespace, name); `observed`: how many containers were found of each
    pod (by their labels). Pure."""
    return AdoptionPlan(
        tuple((key, stored_pod_action(stored[key], containers=observed.get(key, 0) > 0)) for key in sorted(stored)),
        tuple(sorted(key for key, n in observed.items() if n and key not in stored)))


__all__ = ["Adoption", "AdoptionPlan", "adoption_plan", "stored_pod_action"]

"""StatefulSets and DaemonSets as apps/v1 API objects: the applied spec with Kubernetes' defaults, and the status
the controller's counts give (what `kubectl get`, `describe` and `rollout status` read)."""

from __future__ import annotations

import copy
from typing import Any

from meshd.api.kube import stored_metadata
from meshd.controller.loop import Controller
from meshd.controller.records import ObjectRecord
from meshd.model.objects import DaemonSet, StatefulSet


def statefulset(controller: Controller, record: ObjectRecord) -> dict[str, Any]:
    obj = record.obj
    assert isinstance(obj, StatefulSet)
    counts = controller.sets.statefulset_counts(record)
    spec = copy.deepcopy(dict(obj.raw.get("spec") or {}))
    spec["replicas"] = obj.replicas
    spec.setdefault("podManagementPolicy", obj.pod_management_policy)
    spec.setdefault("revisionHistoryLimit", obj.revision_history_limit)
    spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
    strategy: dict[str, Any] = {"type": obj.update_strategy}
    if obj.update_strategy == "RollingUpdate":
        strategy["rollingUpdate"] = {"partition": obj.partition}
    spec["updateStrategy"] = strategy
    status: dict[str, Any] = {
        "observedGeneration": record.generation,
        "replicas": counts.replicas,
        "readyReplicas": counts.ready,
        "currentReplicas": counts.current,
        "updatedReplicas": counts.updated,
        "availableReplicas": counts.available,
        "currentRevision": counts.current_revision,
        "updateRevision": counts.update_revision,
        "collisionCount": 0,
    }
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": stored_metadata(controller, record),
            "spec": spec, "status": status}


def daemonset(controller: Controller, record: ObjectRecord) -> dict[str, Any]:
    obj = record.obj
    assert isinstance(obj, DaemonSet)
    counts = controller.sets.daemonset_counts(record)
    spec = copy.deepcopy(dict(obj.raw.get("spec") or {}))
    spec.setdefault("revisionHistoryLimit", obj.revision_history_limit)
    strategy: dict[str, Any] = {"type": obj.update_strategy}
    if obj.update_strategy == "RollingUpdate":
        strategy["rollingUpdate"] = {"maxUnavailable": obj.max_unavailable, "maxSurge": obj.max_surge}
    spec["updateStrategy"] = strategy
    status: dict[str, Any] = {
        "observedGeneration": record.generation,
        "desiredNumberScheduled": counts.desired,
        "currentNumberScheduled": counts.current,
        "numberReady": counts.ready,
        "updatedNumberScheduled": counts.updated,
        "numberAvailable": counts.available,
        "numberMisscheduled": counts.misscheduled,
    }
    if counts.unavailable:
        status["numberUnavailable"] = counts.unavailable
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": stored_metadata(controller, record),
            "spec": spec, "status": status}


def owner_reference(controller: Controller, kind: str, namespace: str, name: str) -> dict[str, Any]:
    """The ownerReference of a set's pod (its set's uid when the set exists)."""
    record = controller.objects.get((kind, namespace, name))
    return {"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": record.uid if record else "",
            "controller": True, "blockOwnerDeletion": True}


__all__ = ["daemonset", "owner_reference", "statefulset"]

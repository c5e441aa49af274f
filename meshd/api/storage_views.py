"""v1 PersistentVolumeClaim, v1 PersistentVolume and storage.k8s.io/v1 StorageClass as the API shows them: the
stored object with Kubernetes' defaults and a status derived from the bindings (meshd.controller.volumes.binding)."""

from __future__ import annotations

import copy
from typing import Any

from meshd.api.kube import stored_metadata
from meshd.controller.loop import Controller
from meshd.manifests.quantity import format_memory
from meshd.model.objects import PersistentVolume, PersistentVolumeClaim, StorageClass
from meshd.controller.volumes.binding import claim_state, volume_phase
from meshd.controller.volumes.state import StorageState, storage_state

RESOURCES = ("persistentvolumeclaims", "persistentvolumes", "storageclasses")


def objects(controller: Controller, resource: str, namespace: str | None) -> list[dict[str, Any]]:
    state = storage_state(controller)
    if resource == "persistentvolumeclaims":
        return [claim(controller, state, key) for key in sorted(state.claims)
                if namespace is None or key[0] == namespace]
    if resource == "persistentvolumes":
        return [volume(controller, state, name) for name in sorted(state.volumes)]
    return [storage_class(controller, name) for name in sorted(state.classes)]


def _size(num_bytes: int) -> str:
    return format_memory(num_bytes)


def claim(controller: Controller, state: StorageState, key: tuple[str, str]) -> dict[str, Any]:
    record = controller.objects[("PersistentVolumeClaim", *key)]
    obj: PersistentVolumeClaim = record.obj  # type: ignore[assignment]
    c = state.claims[key]
    status = claim_state(c, state.volumes, state.classes, has_consumer=key in state.consumers)
    spec = copy.deepcopy(dict(obj.raw.get("spec") or {}))
    spec.setdefault("volumeMode", "Filesystem")
    if status.class_name:
        spec["storageClassName"] = status.class_name
    if status.volume:
        spec["volumeName"] = status.volume
    meta = stored_metadata(controller, record)
    if c.terminating:
        meta.setdefault("deletionTimestamp", meta.get("creationTimestamp"))
    meta["finalizers"] = ["kubernetes.io/pvc-protection"]
    body: dict[str, Any] = {"phase": status.phase}
    if status.phase == "Bound":
        pv = state.volumes[status.volume]
        body["accessModes"] = list(pv.access_modes)
        body["capacity"] = {"storage": _size(pv.capacity_bytes)}
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec, "status": body}


def volume(controller: Controller, state: StorageState, name: str) -> dict[str, Any]:
    record = controller.objects[("PersistentVolume", "", name)]
    obj: PersistentVolume = record.obj  # type: ignore[assignment]
    spec = copy.deepcopy(dict(obj.raw.get("spec") or {}))
    spec.setdefault("persistentVolumeReclaimPolicy", obj.reclaim_policy)
    spec.setdefault("volumeMode", "Filesystem")
    meta = stored_metadata(controller, record)
    meta.pop("namespace", None)
    meta["finalizers"] = ["kubernetes.io/pv-protection"]
    phase = state.failed.get(name) and "Failed" or volume_phase(obj, state.claims)
    body: dict[str, Any] = {"phase": phase}
    if phase == "Failed":
        body["message"] = state.failed[name]
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": meta, "spec": spec, "status": body}


def storage_class(controller: Controller, name: str) -> dict[str, Any]:
    record = controller.objects[("StorageClass", "", name)]
    obj: StorageClass = record.obj  # type: ignore[assignment]
    body = copy.deepcopy(dict(obj.raw))
    body.setdefault("reclaimPolicy", obj.reclaim_policy)
    body.setdefault("volumeBindingMode", obj.volume_binding_mode)
    body["metadata"] = stored_metadata(controller, record)
    body["metadata"].pop("namespace", None)
    return body


__all__ = ["RESOURCES", "claim", "objects", "storage_class", "volume"]

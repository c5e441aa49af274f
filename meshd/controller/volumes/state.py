"""The storage objects the controller holds, gathered for the binder and the API views: claims (with their uids and
whether their deletion waits for a pod), volumes, classes, and which claims pods use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from meshd.model.objects import PersistentVolume, PersistentVolumeClaim, PodSpec, StorageClass
from meshd.controller.volumes.binding import Claim, ClaimKey


@dataclass
class VolumeStatus:
    """What the binder knows beyond the objects: claims whose deletion waits for their pods to go (the
    kubernetes.io/pvc-protection finalizer) and volumes it failed to provision or reclaim (name -> why)."""

    terminating: set[ClaimKey] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StorageState:
    claims: dict[ClaimKey, Claim]
    volumes: dict[str, PersistentVolume]
    classes: dict[str, StorageClass]
    consumers: dict[ClaimKey, list[str]]  # claim -> the pods (names) using it, running or waiting
    failed: dict[str, str]


def claims_used(namespace: str, spec: PodSpec) -> list[ClaimKey]:
    return [(namespace, v.persistent_volume_claim.claim_name) for v in spec.volumes
            if v.persistent_volume_claim is not None]


def storage_state(controller: Any) -> StorageState:
    """From a meshd.controller.loop.Controller: its objects and pods, and its `volume_status`."""
    status: VolumeStatus = getattr(controller, "volume_status", None) or VolumeStatus()
    claims: dict[ClaimKey, Claim] = {}
    volumes: dict[str, PersistentVolume] = {}
    classes: dict[str, StorageClass] = {}
    shared = getattr(controller, "cluster", None) is not None  # in a cluster: any agent may have marked a claim
    for (_kind, namespace, name), record in controller.objects.items():
        if isinstance(record.obj, PersistentVolumeClaim):
            terminating = (namespace, name) in status.terminating or shared and protected(
                controller.store.get("PersistentVolumeClaim", namespace, name))
            claims[(namespace, name)] = Claim(record.obj, record.uid, terminating)
        elif isinstance(record.obj, PersistentVolume):
            volumes[name] = record.obj
        elif isinstance(record.obj, StorageClass):
            classes[name] = record.obj
    consumers: dict[ClaimKey, list[str]] = {}
    for (namespace, name), worker in controller.managed.items():  # (in a cluster: every node's pods)
        for key in claims_used(namespace, worker.spec):
            consumers.setdefault(key, []).append(name)
    return StorageState(claims, volumes, classes, consumers, dict(status.failed))


PROTECTION = "kubernetes.io/pvc-protection"


def protected(stored: Any) -> bool:
    """Whether a stored claim is being deleted and waits for the pvc-protection finalizer."""
    meta = (stored or {}).get("metadata") or {}
    return bool(meta.get("deletionTimestamp")) and PROTECTION in (meta.get("finalizers") or ())


__all__ = ["PROTECTION", "protected", "StorageState", "VolumeStatus", "claims_used", "storage_state"]

"""The OpenAPI table entries (see meshd.api.openapi) of PersistentVolumeClaim, PersistentVolume, StorageClass and
the pod volume sources that use them."""

from __future__ import annotations

STORAGE_VOLUME_FIELDS = {"persistentVolumeClaim": "PersistentVolumeClaimVolumeSource",
                         "hostPath": "HostPathVolumeSource"}
_OBJECT = {"apiVersion": "string", "kind": "string", "metadata": "ObjectMeta"}
STORAGE_TYPES: dict[str, tuple[str, str, dict[str, str]]] = {
    "PersistentVolumeClaimVolumeSource": ("core", "A reference to a PersistentVolumeClaim in the pod's namespace.",
                                          {"claimName": "string", "readOnly": "boolean"}),
    "HostPathVolumeSource": ("core", "A file or directory of the host mapped into the pod.",
                             {"path": "string", "type": "string"}),
    "PersistentVolumeClaim": ("core", "A user's request for and claim to a persistent volume.", {
        **_OBJECT, "spec": "PersistentVolumeClaimSpec", "status": "PersistentVolumeClaimStatus"}),
    "PersistentVolumeClaimSpec": ("core", "The storage a claim asks for.", {
        "accessModes": "[string]", "resources": "VolumeResourceRequirements", "storageClassName": "string",
        "volumeName": "string", "volumeMode": "string"}),
    "VolumeResourceRequirements": ("core", "The storage requested.", {
        "requests": "{quantity}", "limits": "{quantity}"}),
    "PersistentVolumeClaimStatus": ("core", "The current status of a claim.", {
        "phase": "string", "accessModes": "[string]", "capacity": "{quantity}",
        "conditions": "[PodCondition]"}),
    "PersistentVolume": ("core", "A piece of storage provisioned by an administrator or a StorageClass.", {
        **_OBJECT, "spec": "PersistentVolumeSpec", "status": "PersistentVolumeStatus"}),
    "PersistentVolumeSpec": ("core", "The specification of a persistent volume.", {
        "capacity": "{quantity}", "accessModes": "[string]", "persistentVolumeReclaimPolicy": "string",
        "storageClassName": "string", "claimRef": "ObjectReference", "volumeMode": "string",
        "hostPath": "HostPathVolumeSource", "local": "LocalVolumeSource", "csi": "CSIPersistentVolumeSource",
        "mountOptions": "[string]", "nodeAffinity": "object"}),
    "PersistentVolumeStatus": ("core", "The current status of a persistent volume.", {
        "phase": "string", "message": "string", "reason": "string"}),
    "ObjectReference": ("core", "A reference to another object.", {
        "apiVersion": "string", "kind": "string", "namespace": "string", "name": "string", "uid": "string",
        "resourceVersion": "string"}),
    "LocalVolumeSource": ("core", "A directory of this machine.", {"path": "string", "fsType": "string"}),
    "CSIPersistentVolumeSource": ("core", "Storage managed by a CSI driver (meshd.io/local: meshd's own).", {
        "driver": "string", "volumeHandle": "string", "volumeAttributes": "{string}", "fsType": "string",
        "readOnly": "boolean"}),
    "StorageClass": ("storage", "A class of storage a provisioner creates volumes of.", {
        **_OBJECT, "provisioner": "string", "parameters": "{string}", "reclaimPolicy": "string",
        "volumeBindingMode": "string", "allowVolumeExpansion": "boolean", "mountOptions": "[string]"}),
}

__all__ = ["STORAGE_TYPES", "STORAGE_VOLUME_FIELDS"]

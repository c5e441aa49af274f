"""The default StorageClass every agent has, as a cluster's addon manager installs one: `local`, provisioned by
meshd (Docker named volumes, or directories under the state dir for the process driver)."""

from __future__ import annotations

from typing import Any

from meshd.manifests.storage import DEFAULT_CLASS_ANNOTATION, LOCAL_PROVISIONER

DEFAULT_CLASS_NAME = "local"


def default_class_manifest() -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": DEFAULT_CLASS_NAME, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"},
                     "labels": {"app.kubernetes.io/managed-by": "meshd"}},
        "provisioner": LOCAL_PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


__all__ = ["DEFAULT_CLASS_NAME", "default_class_manifest"]

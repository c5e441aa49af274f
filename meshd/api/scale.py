"""The `scale` subresource's answer: an `autoscaling/v1 Scale` read from a Deployment or ReplicaSet. Pure."""

from __future__ import annotations

from typing import Any

from meshd.api.columns import NONE, format_selector


def scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The Scale of a workload: its desired replicas, the pods it has and the selector that counts them."""
    meta = obj.get("metadata") or {}
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    selector = format_selector(spec.get("selector"))
    return {
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in meta},
        "spec": {"replicas": spec.get("replicas", 1)},
        "status": {"replicas": status.get("replicas", 0), "selector": "" if selector == NONE else selector},
    }


__all__ = ["scale_of"]

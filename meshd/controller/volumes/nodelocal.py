"""Volumes of one node, in a cluster: what meshd provisions there lives on that node's disk (a directory under its
state dir, or a Docker volume of its engine), as Kubernetes' local volumes do, so the PersistentVolume names its
node in `spec.nodeAffinity` (kubernetes.io/hostname In [node]) and a pod using its claim fits only that node (the
scheduler's "volume node affinity conflict"). The leader provisions once the claim's first consumer is bound to a
node; that node's agent makes the storage when the pod is admitted there. Pure: objects in, decisions out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from meshd.controller.volumes.binding import ClaimKey
from meshd.model.objects import PersistentVolume, PersistentVolumeClaim, PodSpec

HOSTNAME = "kubernetes.io/hostname"


def node_affinity(node: str) -> dict[str, Any]:
    """A PersistentVolume's spec.nodeAffinity that keeps it on `node`."""
    return {"required": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": HOSTNAME, "operator": "In", "values": [node]}]}]}}


def volume_nodes(raw: Mapping[str, Any]) -> frozenset[str] | None:
    """The nodes a PersistentVolume (its manifest) may be used on, by name; None when it says nothing (any node).
    Reads the terms Kubernetes' local volumes use: kubernetes.io/hostname In [...] and metadata.name In [...]
    (the terms are ORed, a term's expressions ANDed); a term on any other key does not narrow the nodes."""
    required = (((raw.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {})
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return None
    found: set[str] = set()
    for term in terms:
        names: set[str] | None = None
        for expression in [*(term.get("matchExpressions") or []), *(term.get("matchFields") or [])]:
            if expression.get("key") in (HOSTNAME, "metadata.name") and expression.get("operator") == "In":
                values = {str(v) for v in expression.get("values") or []}
                names = values if names is None else names & values
        if names is None:
            return None  # a term that names no node by name: any node may match it
        found |= names
    return frozenset(found)


def pod_volume_nodes(namespace: str, spec: PodSpec, claim_of: Callable[[ClaimKey], PersistentVolumeClaim | None],
                     volume_of: Callable[[str], PersistentVolume | None]) -> frozenset[str] | None:
    """The nodes a pod fits for its bound claims' volumes (all of them: the intersection); None when none of its
    volumes is tied to nodes. A claim not bound yet does not narrow it (it is provisioned where the pod goes)."""
    allowed: frozenset[str] | None = None
    for volume in spec.volumes:
        source = volume.persistent_volume_claim
        claim = claim_of((namespace, source.claim_name)) if source is not None else None
        pv = volume_of(claim.volume_name) if claim is not None and claim.volume_name else None
        nodes = volume_nodes(pv.raw) if pv is not None else None
        if nodes is not None:
            allowed = nodes if allowed is None else allowed & nodes
    return allowed


def consumer_nodes(pods: Iterable[tuple[str, str, PodSpec, bool]]) -> dict[ClaimKey, str]:
    """claim -> the node of its first consumer bound to one, from (namespace, node, spec, terminating) of every
    pod, oldest first: where the leader provisions a claim's volume."""
    found: dict[ClaimKey, str] = {}
    for namespace, node, spec, terminating in pods:
        if not node or terminating:
            continue
        for volume in spec.volumes:
            if volume.persistent_volume_claim is not None:
                found.setdefault((namespace, volume.persistent_volume_claim.claim_name), node)
    return found


__all__ = ["consumer_nodes", "node_affinity", "pod_volume_nodes", "volume_nodes"]

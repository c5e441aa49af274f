"""The controller's records of desired objects and of the ReplicaSets Deployments own (persist.py stores them)."""

from __future__ import annotations

import copy
import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshd.manifests.hashing import template_hash
from meshd.model.objects import Deployment, KubeObject, ReplicaSet

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"  # copied from the Deployment to its new ReplicaSet
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"  # what `rollout restart` sets on the template
TEMPLATE_HASH_LABEL = "pod-template-hash"


@dataclass
class ObjectRecord:
    obj: KubeObject
    generation: int = 1
    created: float = 0.0
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    _hash: tuple[KubeObject, str] | None = field(default=None, compare=False, repr=False)

    def template_hash(self) -> str:
        """The pod-template-hash of a Deployment or ReplicaSet, computed once per version of the object."""
        if self._hash is None or self._hash[0] is not self.obj:
            self._hash = (self.obj, template_hash(self.obj.template))  # type: ignore[union-attr]
        return self._hash[1]


@dataclass(frozen=True)
class DeploymentStatus:
    """A Deployment's replica counts, computed once for the API and the metrics alike."""

    desired: int
    current: int
    updated: int
    ready: int
    available: int
    new: ReplicaSetRecord | None  # the ReplicaSet of the current template


@dataclass
class ReplicaSetRecord:
    """A ReplicaSet: a bare one from a manifest, or one a Deployment owns (one per template hash)."""

    rs: ReplicaSet
    owner_kind: str  # "Deployment" or "ReplicaSet"
    owner: str
    template_hash: str
    revision: int
    replicas: int
    created: float
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def namespace(self) -> str:
        return self.rs.metadata.namespace

    @property
    def name(self) -> str:
        return self.rs.metadata.name


def owned_replicaset_manifest(deployment: Deployment, template_hash: str, revision: int) -> dict[str, Any]:
    """The apps/v1 ReplicaSet a Deployment creates for its current template (labels carry pod-template-hash)."""
    raw = deployment.raw
    template = copy.deepcopy(dict(raw["spec"]["template"]))
    template.setdefault("metadata", {})
    template["metadata"]["labels"] = {**template["metadata"].get("labels", {}), TEMPLATE_HASH_LABEL: template_hash}
    selector = {**deployment.selector.match_labels, TEMPLATE_HASH_LABEL: template_hash}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{deployment.metadata.name}-{template_hash}",
            "namespace": deployment.metadata.namespace,
            "labels": dict(template["metadata"]["labels"]),
            "annotations": {REVISION_ANNOTATION: str(revision), **_change_cause(deployment)},
        },
        "spec": {
            "replicas": 0,
            "minReadySeconds": deployment.min_ready_seconds,
            "selector": {"matchLabels": selector},
            "template": template,
        },
    }


def keep_live_fields(live: Mapping[str, Any], applied: Mapping[str, Any]) -> dict[str, Any] | None:
    """kubectl apply merges: what `scale` and `rollout restart` set and the manifest never had is kept. The
    applied Deployment/ReplicaSet document with the live `spec.replicas` when it names none (as an autoscaled
    workload's manifest does) and the live template's restartedAt when it has none, so applying the same file
    after a scale or a restart is "unchanged", not a change (None: nothing to carry)."""
    def annotations(doc: Mapping[str, Any]) -> Mapping[str, Any]:
        template = (doc.get("spec") or {}).get("template") or {}
        return (template.get("metadata") or {}).get("annotations") or {}

    live_spec, applied_spec = live.get("spec") or {}, applied.get("spec") or {}
    replicas = live_spec.get("replicas") if "replicas" not in applied_spec else None
    restarted = annotations(live).get(RESTARTED_AT_ANNOTATION)
    if RESTARTED_AT_ANNOTATION in annotations(applied):
        restarted = None
    if replicas is None and restarted is None:
        return None
    carried = copy.deepcopy(dict(applied))
    spec = carried.setdefault("spec", {})
    if replicas is not None:
        spec["replicas"] = replicas
    if restarted is not None:
        template = spec.setdefault("template", {})
        metadata = template.get("metadata") or {}
        template["metadata"] = {**metadata, "annotations": {**(metadata.get("annotations") or {}),
                                                            RESTARTED_AT_ANNOTATION: restarted}}
    return carried


def _change_cause(deployment: Deployment) -> dict[str, str]:
    cause = deployment.metadata.annotations.get(CHANGE_CAUSE_ANNOTATION)
    return {CHANGE_CAUSE_ANNOTATION: cause} if cause else {}


def with_change_cause(rs: ReplicaSet, deployment: Deployment) -> ReplicaSet:
    """The ReplicaSet carrying its Deployment's current change-cause (what `rollout history` shows), as the
    Deployment controller copies it onto the ReplicaSet it makes current; unchanged when they agree."""
    cause = deployment.metadata.annotations.get(CHANGE_CAUSE_ANNOTATION)
    if cause is None or rs.metadata.annotations.get(CHANGE_CAUSE_ANNOTATION) == cause:
        return rs
    annotations = {**rs.metadata.annotations, CHANGE_CAUSE_ANNOTATION: cause}
    raw = copy.deepcopy(dict(rs.raw))
    raw.setdefault("metadata", {})["annotations"] = {**(raw["metadata"].get("annotations") or {}),
                                                     CHANGE_CAUSE_ANNOTATION: cause}
    metadata = dataclasses.replace(rs.metadata, annotations=annotations)
    return dataclasses.replace(rs, metadata=metadata, raw=raw)


def template_without_hash(rs: ReplicaSet) -> dict[str, Any]:
    """A ReplicaSet's pod template as its Deployment had it (for rollout undo)."""
    template = copy.deepcopy(dict(rs.raw["spec"]["template"]))
    labels = template.get("metadata", {}).get("labels", {})
    labels.pop(TEMPLATE_HASH_LABEL, None)
    return template

"""What an apply refuses before anything is written, besides what the manifest reader refuses: an object in
another namespace than kubectl's -n, a Job's immutable fields changed, a Pod or ReplicaSet taking the name of one a
controller owns. Pure: each raises ManifestError or returns."""

from __future__ import annotations

import json

from meshd.controller.pod import PodIdentity
from meshd.controller.records import ReplicaSetRecord
from meshd.manifests import ManifestError, load_objects
from meshd.model.objects import CLUSTER_SCOPED, Job, KubeObject, Pod, ReplicaSet


def in_namespace(obj: KubeObject, namespace: str | None, source: str) -> KubeObject:
    """The object in the namespace the user chose for objects that name none (kubectl's -n)."""
    if namespace is None or obj.kind in CLUSTER_SCOPED:
        return obj
    named = (obj.raw.get("metadata") or {}).get("namespace")
    if named is not None and named != namespace:
        raise ManifestError(f'the namespace from the provided object "{named}" does not match the namespace '
                            f'"{namespace}"', source=source, kind=obj.kind, name=obj.metadata.name,
                            path=("metadata", "namespace"))
    if named == namespace:
        return obj
    raw = json.loads(json.dumps(obj.raw))
    raw.setdefault("metadata", {})["namespace"] = namespace
    (moved,) = load_objects([raw], source=source).objects
    return moved


def check_immutable(old: KubeObject, new: KubeObject, source: str) -> None:
    """A Job's pod template and completions are immutable, as the API server keeps them."""
    if isinstance(old, Job) and isinstance(new, Job):
        for path, before, after in ((("spec", "template"), old.template, new.template),
                                    (("spec", "completions"), old.completions, new.completions),
                                    (("spec", "completionMode"), old.completion_mode, new.completion_mode)):
            if before != after:
                raise ManifestError("field is immutable", source=source, kind="Job", name=new.metadata.name,
                                    path=path)


def check_pod_name_free(pod: Pod, running: PodIdentity | None, source: str) -> None:
    """A Pod manifest may not take the name of a pod a ReplicaSet runs (`running`: the identity of the pod of that
    name, if any; e.g. `get pod -o yaml | apply`): it would shadow that pod and outlive its Deployment."""
    if running is not None and running.replicaset:
        owner = f'{running.owner_kind.lower()} "{running.owner}"'
        raise ManifestError(f'pod "{pod.metadata.name}" is run by ReplicaSet "{running.replicaset}": '
                            f"change {owner} instead", source=source, kind="Pod", name=pod.metadata.name,
                            path=("metadata", "name"))


def check_replicaset_name_free(rs: ReplicaSet, existing: ReplicaSetRecord | None, source: str) -> None:
    """A ReplicaSet manifest may not take the name of one a Deployment owns (both are ReplicaSets)."""
    if existing is not None and existing.owner_kind == "Deployment":
        raise ManifestError(f'replicaset "{rs.metadata.name}" is owned by Deployment "{existing.owner}"',
                            source=source, kind="ReplicaSet", name=rs.metadata.name, path=("metadata", "name"))


__all__ = ["check_immutable", "check_pod_name_free", "check_replicaset_name_free", "in_namespace"]

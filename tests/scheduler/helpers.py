"""Pods and nodes for the scheduler's tests, built through the manifest loader (the fields as users write them)."""

from __future__ import annotations

from typing import Any

from meshd.manifests import load_documents
from meshd.model.objects import Pod
from meshd.scheduler import NodeInfo, PodInfo, Taint
from meshd.scheduler.model import HOSTNAME, ZONE


def pod(name: str, labels: dict[str, str] | None = None, *, node: str = "", namespace: str = "default",
        cpu: str | None = None, memory: str | None = None, host_port: int | None = None,
        **scheduling: Any) -> PodInfo:
    """A pod with one container; `scheduling` holds spec fields as in YAML (nodeSelector=..., affinity=...)."""
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    container: dict[str, Any] = {"name": "c", "image": "busybox"}
    if requests:
        container["resources"] = {"requests": requests}
    if host_port is not None:
        container["ports"] = [{"containerPort": 80, "hostPort": host_port}]
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace,
                                                           "labels": labels or {}},
           "spec": {"containers": [container], **scheduling}}
    loaded = load_documents_one(doc)
    return PodInfo(namespace, name, labels or {}, loaded.spec, node=node)


def load_documents_one(doc: dict[str, Any]) -> Pod:
    import json

    result = load_documents(json.dumps(doc), source="test.yaml")
    obj = result.objects[0]
    assert isinstance(obj, Pod)
    return obj


def node(name: str, *, zone: str | None = None, cpu: int = 4000, memory: int = 8 << 30, pods: int = 110,
         labels: dict[str, str] | None = None, taints: tuple[Taint, ...] = (), ready: bool = True,
         unschedulable: bool = False) -> NodeInfo:
    all_labels = {HOSTNAME: name, **({ZONE: zone} if zone else {}), **(labels or {})}
    return NodeInfo(name, all_labels, cpu, memory, pods, taints, ready, unschedulable)


def anti(app: str, key: str = HOSTNAME, *, preferred: bool = False) -> dict[str, Any]:
    term = {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}
    if preferred:
        return {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": term}]}}
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}


def spread(app: str, key: str = HOSTNAME, *, skew: int = 1, when: str = "DoNotSchedule",
           **extra: Any) -> list[dict[str, Any]]:
    return [{"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when,
             "labelSelector": {"matchLabels": {"app": app}}, **extra}]

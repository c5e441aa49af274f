"""Shared builders for the manifests tests (no tests here): valid base documents and a path patcher."""

from __future__ import annotations

import copy
from typing import Any

import yaml

DELETE = object()


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.25",
                            "ports": [{"containerPort": 80, "name": "http"}],
                            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
    }


def replica_set() -> dict[str, Any]:
    doc = deployment()
    doc["kind"] = "ReplicaSet"
    doc["metadata"]["name"] = "rs"
    return doc


def pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "one"},
        "spec": {"containers": [{"name": "app", "image": "busybox", "command": ["sleep", "1000"]}]},
    }


def service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
    }


BASES = {"deployment": deployment, "replicaset": replica_set, "pod": pod, "service": service}


def patched(base: str, path: str, value: Any) -> dict[str, Any]:
    """BASES[base]() with the value at a dotted path ("spec.template.spec.containers.0.image") replaced."""
    doc = copy.deepcopy(BASES[base]())
    if not path:
        return doc
    parts: list[Any] = [int(p) if p.isdigit() else p for p in path.split(".")]
    target: Any = doc
    for part in parts[:-1]:
        if isinstance(target, dict):
            target = target.setdefault(part, {})
        else:
            target = target[part]
    if value is DELETE:
        del target[parts[-1]]
    elif isinstance(target, list) and parts[-1] == len(target):
        target.append(value)
    else:
        target[parts[-1]] = value
    return doc


def to_yaml(*docs: dict[str, Any]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)

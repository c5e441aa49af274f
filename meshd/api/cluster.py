"""The cluster-scoped objects kubectl expects of any cluster: `v1 Namespace` (each namespace in use, and
`default`) and `v1 Node` (the one node this agent runs, with its capacity). Derived, never stored. Pure."""

from __future__ import annotations

import platform
import uuid
from typing import Any

from meshd.api.discovery import KUBE_MAJOR, KUBE_MINOR
from meshd.api.kube import rfc3339


def _uid(kind: str, name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"meshd:{kind}/{name}"))


def _os_image() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", "Linux")
    except OSError:
        return "Linux"


def namespace(name: str, *, created: float | None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "uid": _uid("namespace", name), "creationTimestamp": rfc3339(created),
                         "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def node(name: str, *, created: float, cpu_millicores: int, memory_bytes: int, address: str,
         runtime: str) -> dict[str, Any]:
    """The agent's node: what it admits pods against (cpu, memory) as capacity and allocatable."""
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    cpu = str(cpu_millicores // 1000) if cpu_millicores % 1000 == 0 else f"{cpu_millicores}m"
    resources = {"cpu": cpu, "memory": f"{memory_bytes // 1024}Ki"}
    version = f"v{KUBE_MAJOR}.{KUBE_MINOR}.0-meshd"
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": _uid("node", name), "creationTimestamp": rfc3339(created),
                     "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                "kubernetes.io/arch": arch}},
        "spec": {},
        "status": {
            "capacity": resources, "allocatable": dict(resources),
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "the meshd agent is running", "lastHeartbeatTime": rfc3339(created),
                            "lastTransitionTime": rfc3339(created)}],
            "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": version, "kubeProxyVersion": version, "operatingSystem": "linux",
                         "architecture": arch, "kernelVersion": platform.release(),
                         "osImage": _os_image(),
                         "containerRuntimeVersion": runtime,
                         "machineID": "", "systemUUID": "", "bootID": ""},  # required by clients, unknown
        },
    }


__all__ = ["namespace", "node"]

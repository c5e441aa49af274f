"""API discovery as the Kubernetes API server answers it (`/version`, `/api`, `/apis`, `/api/v1`, `/apis/G/V`,
and the aggregated `apidiscovery.k8s.io/v2` form kubectl asks for first), generated from the one table of kinds
meshd serves (meshd.api.kinds). Pure: documents in, no I/O."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from typing import Any

from meshd.api import selfreview
from meshd.api.kinds import (
    ENDPOINTSLICE,
    EVENTS_V1,
    INGRESSCLASS,
    KINDS,
    LEASE,
    NAMESPACE,
    NODE,
    SUBRESOURCE_GROUPS,
    Kind,
)

# The Kubernetes API meshd mimics: that of the kubectl and client libraries it is tested with (kubectl v1.37,
# kubernetes 37), so kubectl prints no version-skew warning.
KUBE_MAJOR, KUBE_MINOR = 1, 37
AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

PODMETRICS = Kind("PodMetrics", "pods", "metrics.k8s.io", "v1beta1", (), verbs=("get", "list"), categories=())
API_KINDS: tuple[Kind, ...] = (*KINDS, NAMESPACE, NODE, INGRESSCLASS, LEASE, EVENTS_V1, ENDPOINTSLICE, PODMETRICS,
                               *selfreview.KINDS)


def version_info(meshd_version: str) -> dict[str, str]:
    """`/version`: a version.Info; the gitVersion says it is meshd ("v1.37.0-meshd")."""
    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return {
        "major": str(KUBE_MAJOR), "minor": str(KUBE_MINOR),
        "gitVersion": f"v{KUBE_MAJOR}.{KUBE_MINOR}.0-meshd", "gitCommit": meshd_version,
        "gitTreeState": "clean", "buildDate": "", "goVersion": f"python{platform.python_version()}",
        "compiler": platform.python_implementation().lower(), "platform": f"linux/{machine}",
    }


def group_versions(kinds: Iterable[Kind] = API_KINDS) -> dict[str, list[str]]:
    """group -> its versions, in the table's order ("" is the core group)."""
    found: dict[str, list[str]] = {}
    for kind in kinds:
        versions = found.setdefault(kind.group, [])
        if kind.version not in versions:
            versions.append(kind.version)
    return found


def api_versions(server_address: str) -> dict[str, Any]:
    """`/api`: the core group's versions."""
    return {"kind": "APIVersions", "versions": group_versions().get("", []),
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def api_group_list() -> dict[str, Any]:
    """`/apis`: every named group (the core group is under /api)."""
    groups = []
    for group, versions in group_versions().items():
        if group:
            entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
            groups.append({"name": group, "versions": entries, "preferredVersion": entries[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _of(group: str, version: str) -> list[Kind]:
    return [k for k in API_KINDS if (k.group, k.version) == (group, version)]


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    """`/api/v1`, `/apis/apps/v1`: resources and their subresources; None for a group version meshd lacks."""
    kinds = _of(group, version)
    if not kinds:
        return None
    resources: list[dict[str, Any]] = []
    for k in kinds:
        entry: dict[str, Any] = {"name": k.plural, "singularName": k.singular, "namespaced": k.namespaced,
                                 "kind": k.kind, "verbs": list(k.verbs)}
        if k.short_names:
            entry["shortNames"] = list(k.short_names)
        if k.categories:
            entry["categories"] = list(k.categories)
        resources.append(entry)
        for name, kind, verbs in k.subresources:
            sub: dict[str, Any] = {"name": f"{k.plural}/{name}", "singularName": "", "namespaced": k.namespaced,
                                   "kind": kind or k.kind, "verbs": list(verbs)}
            if kind in SUBRESOURCE_GROUPS:
                sub.update(group=SUBRESOURCE_GROUPS[kind][0], version=SUBRESOURCE_GROUPS[kind][1])
            resources.append(sub)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": k.api_version, "resources": resources}


def _discovery_resource(k: Kind) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": k.plural, "responseKind": {"group": k.group, "version": k.version, "kind": k.kind},
        "scope": "Namespaced" if k.namespaced else "Cluster", "singularResource": k.singular,
        "verbs": list(k.verbs),
    }
    if k.short_names:
        entry["shortNames"] = list(k.short_names)
    if k.categories:
        entry["categories"] = list(k.categories)
    subs = []
    for name, kind, verbs in k.subresources:
        group, version = SUBRESOURCE_GROUPS.get(kind, (k.group, k.version))
        response = {"group": group, "version": version, "kind": kind or k.kind}
        subs.append({"subresource": name, "responseKind": response, "verbs": list(verbs)})
    if subs:
        entry["subresources"] = subs
    return entry


def aggregated(*, core: bool) -> dict[str, Any]:
    """The aggregated discovery document (apidiscovery.k8s.io/v2): `/api` (core=True) or `/apis`."""
    items = []
    for group, versions in group_versions().items():
        if bool(group) == core:
            continue
        items.append({
            "metadata": {"name": group, "creationTimestamp": None},
            "versions": [{"version": v, "freshness": "Current",
                          "resources": [_discovery_resource(k) for k in _of(group, v)]} for v in versions],
        })
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
            "items": items}


def wants_aggregated(accept: str) -> bool:
    """Whether the Accept header's first media type meshd can serve is the aggregated discovery (kubectl sends
    v2 first, then v2beta1, then plain application/json)."""
    for media in accept.split(","):
        params = dict(p.strip().partition("=")[::2] for p in media.split(";")[1:])
        base = media.split(";")[0].strip()
        if params.get("as") == "APIGroupDiscoveryList" and params.get("g") == "apidiscovery.k8s.io":
            if params.get("v") == "v2" and base in ("application/json", "*/*"):
                return True
            continue
        if base in ("application/json", "*/*", "application/*", ""):
            return False
    return False


__all__ = ["AGGREGATED", "API_KINDS", "aggregated", "api_group_list", "api_resource_list", "api_versions",
           "group_versions", "version_info", "wants_aggregated"]

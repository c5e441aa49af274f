"""discovery.k8s.io/v1 EndpointSlices: each Service's endpoints as Kubernetes (1.21+) serves them, a view of the
endpoint registry as the v1 Endpoints are (kube.endpoints). `kubectl describe service` reads its Endpoints line
from the slices labelled `kubernetes.io/service-name`, and the Kubernetes clients watch them.

One slice per set of target ports (endpoints of one Service share their port numbers unless named ports differ),
named `<service>-<5 characters>` as the EndpointSlice controller names them; a Service with a selector and no
endpoint yet has one empty slice. The names and uids are derived from the Service's uid, so they stay the same
from one read to the next."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from meshd.model.endpoints import Endpoint, port_groups
from meshd.model.objects import Service

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "meshd"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' generateName alphabet (no vowels, no 0/1/3)


def slice_name(service: str, service_uid: str, index: int) -> str:
    """`<service>-xxxxx`: stable for a Service (its uid) and the slice's place."""
    digest = hashlib.sha256(f"{service_uid}/{index}".encode()).digest()
    suffix = "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:5])
    return f"{service[:57]}-{suffix}"


def _endpoint(ep: Endpoint, namespace: str, node: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "addresses": [ep.address],
        "conditions": {"ready": ep.ready, "serving": ep.ready, "terminating": False},
        "nodeName": ep.node or node,
        "targetRef": {"kind": "Pod", "namespace": namespace, "name": ep.name},
    }
    if ep.hostname:
        entry["hostname"] = ep.hostname
    return entry


def endpoint_slices(
    service: Service, *, uid: str, created: str | None, endpoints: Iterable[Endpoint], node: str
) -> list[dict[str, Any]]:
    """The slices of one Service (none for a Service without a selector: its slices are the user's to write)."""
    if not service.selector:
        return []
    meta = service.metadata
    protocols: Mapping[str, str] = {p.name: p.protocol for p in service.ports}
    groups = port_groups(endpoints) or [((), [])]
    slices = []
    for index, (ports, members) in enumerate(groups):
        name = slice_name(meta.name, uid, index)
        slices.append({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": name,
                "namespace": meta.namespace,
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"meshd:endpointslice:{uid}/{index}")),
                "creationTimestamp": created,
                "generateName": f"{meta.name}-",
                "labels": dict(meta.labels) | {SERVICE_NAME_LABEL: meta.name, MANAGED_BY_LABEL: MANAGED_BY},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": meta.name, "uid": uid,
                                     "controller": True, "blockOwnerDeletion": True}],
            },
            "addressType": "IPv4",
            "endpoints": [_endpoint(ep, meta.namespace, node) for ep in members],
            "ports": [{"name": port_name, "port": port, "protocol": protocols.get(port_name, "TCP")}
                      for port_name, port in ports],
        })  # fmt: skip
    return slices


# the types meshd.api.openapi documents for them (its table's form; "discovery." names those other groups have too)
OPENAPI_TYPES: dict[str, tuple[str, str, dict[str, str]]] = {
    "EndpointSlice": ("discovery", "A set of a Service's endpoints that share their ports (read-only in meshd: "
                      "the agent derives them from the Service's ready and unready pods).", {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta", "addressType": "string",
        "endpoints": "[discovery.Endpoint]", "ports": "[discovery.EndpointPort]"}),
    "discovery.Endpoint": ("discovery", "One endpoint of the slice: a pod's address and its state.", {
        "addresses": "[string]", "conditions": "discovery.EndpointConditions", "hostname": "string",
        "nodeName": "string", "targetRef": "ObjectReference"}),
    "discovery.EndpointConditions": ("discovery", "Whether the endpoint takes traffic.", {
        "ready": "boolean", "serving": "boolean", "terminating": "boolean"}),
    "discovery.EndpointPort": ("discovery", "A port every endpoint of the slice listens on.", {
        "name": "string", "port": "integer", "protocol": "string", "appProtocol": "string"}),
}  # fmt: skip

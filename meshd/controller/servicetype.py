"""What a Service keeps of its previous type when its type changes (pure), as Kubernetes' service strategy
(`dropTypeDependentFields`) decides on an update.

A client-side `kubectl apply` or an `edit` that changes only `type` carries the live object's other fields along:
a Service turned ExternalName still holds the clusterIP (and nodePorts) it was given, one turned back still holds its
externalName. A field the new type cannot have is dropped when it is exactly what the stored object had (the server
gave it, the user did not ask for it again); set anew, it is refused, naming the field. An ExternalName Service has
no address: its clusterIP goes (the address plan frees it), and turned back it is given a new one."""

from __future__ import annotations

import dataclasses
from typing import Any

from meshd.model.objects import Service, ServicePort

FieldPath = tuple[str | int, ...]


class TypeFieldError(ValueError):
    """A field the Service's type may not have; `path` names it."""

    def __init__(self, path: FieldPath, message: str) -> None:
        super().__init__(message)
        self.path, self.message = path, message


def stored_cluster_ip(service: Service) -> str | None:
    """spec.clusterIP as the object holds it: "None" for a headless Service, None when it has none."""
    return "None" if service.headless else service.cluster_ip


def settle_type_change(service: Service, previous: Service | None) -> Service:
    """`service` without the fields its type cannot have that `previous` (the stored Service) already had;
    TypeFieldError when such a field is new."""
    if service.type == "ExternalName":
        return _without_node_ports(_without_cluster_ip(service, previous), previous)
    if service.external_name is None:
        return service
    if previous is not None and previous.type == "ExternalName" and previous.external_name == service.external_name:
        raw = _raw_spec(service)
        raw["spec"].pop("externalName", None)
        return dataclasses.replace(service, external_name=None, raw=raw)
    raise TypeFieldError(("spec", "externalName"), "may only be set when `type` is 'ExternalName'")


def _without_cluster_ip(service: Service, previous: Service | None) -> Service:
    if service.cluster_ip is None:
        return service
    if previous is None or previous.type == "ExternalName" or stored_cluster_ip(previous) != service.cluster_ip:
        raise TypeFieldError(("spec", "clusterIP"), "may not be set for ExternalName services")
    raw = _raw_spec(service)
    raw["spec"].pop("clusterIP", None)
    raw["spec"].pop("clusterIPs", None)
    return dataclasses.replace(service, cluster_ip=None, headless=False, raw=raw)


def _without_node_ports(service: Service, previous: Service | None) -> Service:
    if all(p.node_port is None for p in service.ports):
        return service
    had_node_ports = previous is not None and previous.type in ("NodePort", "LoadBalancer")
    held = {(p.port, p.protocol, p.node_port) for p in previous.ports} if previous and had_node_ports else set()
    ports: list[ServicePort] = []
    raw = _raw_spec(service)
    raw_ports = raw["spec"].get("ports")
    for i, port in enumerate(service.ports):
        if port.node_port is not None:
            if (port.port, port.protocol, port.node_port) not in held:
                raise TypeFieldError(("spec", "ports", i, "nodePort"), "may not be used when `type` is 'ExternalName'")
            port = dataclasses.replace(port, node_port=None)
            if isinstance(raw_ports, list) and i < len(raw_ports) and isinstance(raw_ports[i], dict):
                raw_ports[i] = {k: v for k, v in raw_ports[i].items() if k != "nodePort"}
        ports.append(port)
    return dataclasses.replace(service, ports=tuple(ports), raw=raw)


def _raw_spec(service: Service) -> dict[str, Any]:
    """A copy of the Service's manifest whose spec (and ports list) may be changed."""
    raw = dict(service.raw)
    spec = dict(raw.get("spec") or {})
    if isinstance(spec.get("ports"), list):
        spec["ports"] = list(spec["ports"])
    raw["spec"] = spec
    return raw

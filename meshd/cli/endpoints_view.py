"""`meshd get endpoints -w`: the endpoint watch stream folded into v1 Endpoints objects (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from meshd.model.endpoints import Add, DoesNotExist, Endpoint, Remove, Reset, ServiceInfo, ServiceKey, Update

Obj = dict[str, Any]


def endpoints_object(
    service: ServiceInfo, endpoints: Iterable[Endpoint], *, created: str | None = None
) -> Obj:
    """A Service's endpoints as a `v1 Endpoints`: subsets grouped by port numbers, ready vs notReadyAddresses."""
    subsets: dict[tuple[tuple[str, int, str], ...], Obj] = {}
    for ep in sorted(endpoints, key=lambda e: (e.address, e.name)):
        ports = tuple(
            (p.name, ep.ports.get(p.name, p.port), p.protocol) for p in service.ports if p.name in ep.ports
        )
        subset = subsets.setdefault(ports, {"addresses": [], "notReadyAddresses": []})
        address: Obj = {
            "ip": ep.address,
            "targetRef": {"kind": "Pod", "name": ep.name, "namespace": service.key.namespace},
        }
        if ep.node:
            address["nodeName"] = ep.node
        if ep.hostname:
            address["hostname"] = ep.hostname
        subset["addresses" if ep.ready else "notReadyAddresses"].append(address)
    out = []
    for ports, subset in subsets.items():
        entry = {k: v for k, v in subset.items() if v}
        if ports:
            entry["ports"] = [
                {**({"name": name} if name else {}), "port": number, "protocol": protocol}
                for name, number, protocol in ports
            ]
        out.append(entry)
    meta: Obj = {"name": service.key.name, "namespace": service.key.namespace}
    if created:
        meta["creationTimestamp"] = created
    obj: Obj = {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta}
    if out:
        obj["subsets"] = out
    return obj


class EndpointsView:
    """The Services and endpoints a watch has described so far; `apply` returns the Service it changed."""

    def __init__(self) -> None:
        self._services: dict[ServiceKey, tuple[ServiceInfo, dict[str, Endpoint]]] = {}

    def apply(self, update: Update) -> ServiceKey | None:
        match update:
            case Reset(service, endpoints):
                self._services[service.key] = (service, {e.name: e for e in endpoints})
                return service.key
            case Add(key, endpoints):
                if key not in self._services:
                    return None
                self._services[key][1].update({e.name: e for e in endpoints})
                return key
            case Remove(key, names):
                if key not in self._services:
                    return None
                for name in names:
                    self._services[key][1].pop(name, None)
                return key
            case DoesNotExist(key):
                return key if self._services.pop(key, None) is not None else None
        return None

    def object(self, key: ServiceKey, *, created: str | None = None) -> Obj | None:
        """The v1 Endpoints of a Service the view holds (None once it no longer exists)."""
        held = self._services.get(key)
        return endpoints_object(held[0], held[1].values(), created=created) if held else None

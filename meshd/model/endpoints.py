"""What discovery publishes: Services with their addresses, their endpoints, and the update stream.

The stream between the registry and its consumers (DNS, mDNS, the watch API, sidecars) is exactly
Linkerd's destination protocol: Reset / Add / Remove / DoesNotExist, per Service.
These values have a JSON form (`to_json`/`from_json`) that is the wire format of the watch API.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, order=True)
class ServiceKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> ServiceKey:
        namespace, _, name = text.partition("/")
        return cls(namespace, name) if name else cls("default", namespace)


@dataclass(frozen=True)
class PortInfo:
    name: str  # "" for a Service's single unnamed port
    port: int  # the Service's port (what clients and the sidecar use)
    target_port: int | str
    protocol: str = "TCP"
    app_protocol: str | None = None  # the Service port's appProtocol; wire key "appProtocol", optional


@dataclass(frozen=True)
class ExternalPort:
    """Where the node's sidecar also serves a Service port from outside the mesh (LoadBalancer, NodePort)."""

    address: str  # one of the agent's --external addresses
    port: int  # the Service's port (LoadBalancer) or its nodePort
    protocol: str  # "TCP" or "UDP"
    port_name: str  # the Service port it reaches

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address, "port": self.port, "protocol": self.protocol, "portName": self.port_name}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExternalPort:
        return cls(str(data["address"]), int(data["port"]), str(data.get("protocol", "TCP")),
                   str(data.get("portName", "")))  # fmt: skip


@dataclass(frozen=True)
class ServiceInfo:
    """A Service as discovery sees it: its address (ClusterIP, or None when headless) and ports."""

    key: ServiceKey
    address: str | None
    ports: tuple[PortInfo, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)
    external: tuple[ExternalPort, ...] = ()  # wire key "external", optional
    # spec.trafficDistribution ("PreferClose": a sidecar prefers its node's ready endpoints); wire key
    # "trafficDistribution", optional
    traffic_distribution: str | None = None
    # type ExternalName: the name DNS answers a CNAME to (no address, no endpoints); wire key "externalName",
    # optional
    external_name: str | None = None

    @property
    def headless(self) -> bool:
        """No address of its own: DNS answers its ready endpoints (an ExternalName Service is not headless)."""
        return self.address is None and not self.external_name

    def to_json(self) -> dict[str, Any]:
        return {
            "namespace": self.key.namespace,
            "name": self.key.name,
            "address": self.address,
            "ports": [
                {
                    "name": p.name, "port": p.port, "targetPort": p.target_port, "protocol": p.protocol,
                    **({"appProtocol": p.app_protocol} if p.app_protocol else {}),
                }
                for p in self.ports
            ],
            "annotations": dict(self.annotations),
            **({"external": [e.to_json() for e in self.external]} if self.external else {}),
            **({"trafficDistribution": self.traffic_distribution} if self.traffic_distribution else {}),
            **({"externalName": self.external_name} if self.external_name else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServiceInfo:
        return cls(
            key=ServiceKey(data["namespace"], data["name"]),
            address=data.get("address"),
            ports=tuple(
                PortInfo(
                    p.get("name", ""), int(p["port"]), p.get("targetPort", p["port"]), p.get("protocol", "TCP"),
                    p.get("appProtocol") or None,
                )
                for p in data.get("ports", ())
            ),
            annotations=dict(data.get("annotations") or {}),
            external=tuple(ExternalPort.from_json(e) for e in data.get("external") or ()),
            traffic_distribution=data.get("trafficDistribution") or None,
            external_name=data.get("externalName") or None,
        )


@dataclass(frozen=True)
class Endpoint:
    """One pod behind a Service: where it listens (address + the target port of each Service port)."""

    name: str  # the pod's name; unique within the Service
    address: str  # an address this host can reach (the pod's address on the meshd bridge, or 127.x)
    ports: Mapping[str, int]  # Service port name -> the pod's port
    ready: bool = True
    reason: str = ""  # why not ready (e.g. "readiness probe failed: HTTP 500")
    node: str = ""  # the origin: which agent knows this endpoint
    hostname: str = ""  # for headless Services: the pod's hostname record
    gateway: str = ""  # on another node: "host:port" of that node's mesh gateway; wire key "gateway", optional

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "ports": dict(self.ports),
            "ready": self.ready,
            "reason": self.reason,
            "node": self.node,
            "hostname": self.hostname,
            **({"gateway": self.gateway} if self.gateway else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Endpoint:
        return cls(
            name=data["name"],
            address=data["address"],
            ports={str(k): int(v) for k, v in (data.get("ports") or {}).items()},
            ready=bool(data.get("ready", True)),
            reason=data.get("reason", ""),
            node=data.get("node", ""),
            hostname=data.get("hostname", ""),
            gateway=data.get("gateway", ""),
        )


PortSet = tuple[tuple[str, int], ...]  # (Service port name, the pod's port), sorted


def port_groups(endpoints: Iterable[Endpoint]) -> list[tuple[PortSet, list[Endpoint]]]:
    """A Service's endpoints grouped by their ports, in the ports' order: endpoints share their port numbers
    unless a named target port differs between pods (one v1 Endpoints subset, one EndpointSlice, per group)."""
    groups: dict[PortSet, list[Endpoint]] = {}
    for ep in endpoints:
        groups.setdefault(tuple(sorted(ep.ports.items())), []).append(ep)
    return sorted(groups.items())


# --- the update stream ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reset:
    """The full current state of a Service: its definition and every endpoint (ready or not)."""

    service: ServiceInfo
    endpoints: tuple[Endpoint, ...]


@dataclass(frozen=True)
class Add:
    """Endpoints that appeared or changed (a changed endpoint is re-added whole, keyed by name)."""

    service: ServiceKey
    endpoints: tuple[Endpoint, ...]


@dataclass(frozen=True)
class Remove:
    """Endpoints that are gone, by name."""

    service: ServiceKey
    names: tuple[str, ...]


@dataclass(frozen=True)
class DoesNotExist:
    service: ServiceKey


Update = Reset | Add | Remove | DoesNotExist


def update_to_json(update: Update) -> dict[str, Any]:
    match update:
        case Reset(service, endpoints):
            return {
                "type": "Reset",
                "service": service.to_json(),
                "endpoints": [e.to_json() for e in endpoints],
            }
        case Add(key, endpoints):
            return {"type": "Add", "service": str(key), "endpoints": [e.to_json() for e in endpoints]}
        case Remove(key, names):
            return {"type": "Remove", "service": str(key), "names": list(names)}
        case DoesNotExist(key):
            return {"type": "DoesNotExist", "service": str(key)}
    raise TypeError(update)


def update_from_json(data: Mapping[str, Any]) -> Update:
    kind = data["type"]
    if kind == "Reset":
        return Reset(ServiceInfo.from_json(data["service"]), tuple(Endpoint.from_json(e) for e in data["endpoints"]))
    key = ServiceKey.parse(data["service"])
    if kind == "Add":
        return Add(key, tuple(Endpoint.from_json(e) for e in data["endpoints"]))
    if kind == "Remove":
        return Remove(key, tuple(data["names"]))
    if kind == "DoesNotExist":
        return DoesNotExist(key)
    raise ValueError(f"unknown update type {kind!r}")

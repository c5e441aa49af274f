"""nodePorts: given or allocated (30000-32767), unique on the node, kept across updates and agent restarts.

`assign_node_ports` is pure: it returns the Service with every nodePort it needs filled in (in its manifest too,
so the store persists the allocation), or raises `PortClaimError` naming the field. A Service claims its nodePorts
and, when it is a LoadBalancer, its ports, on the external addresses; another Service may claim neither.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from meshd.model.objects import Service, ServicePort

NODE_PORTS = (30000, 32767)  # Kubernetes' default --service-node-port-range

FieldPath = tuple[str | int, ...]  # as manifests.errors spells one (this layer sits below the manifests)
Claim = tuple[int, str]  # (port number, "TCP" or "UDP") on the external addresses


@dataclass(frozen=True)
class PortClaimError(Exception):
    """A port the Service asks for that another Service holds, or none left to allocate."""

    path: FieldPath
    message: str

    def __str__(self) -> str:
        return self.message


def wants_node_ports(service: Service) -> bool:
    """NodePort Services always get nodePorts; LoadBalancer ones unless allocateLoadBalancerNodePorts: false."""
    return service.type == "NodePort" or (service.type == "LoadBalancer" and service.allocate_node_ports)


def claims(service: Service) -> dict[Claim, FieldPath]:
    """Every (port, protocol) the Service listens on at the external addresses, with the field that asks."""
    out: dict[Claim, FieldPath] = {}
    for i, p in enumerate(service.ports):
        if service.type == "LoadBalancer":
            out[(p.port, p.protocol)] = ("spec", "ports", i, "port")
        if p.node_port is not None and service.type != "ClusterIP":
            out.setdefault((p.node_port, p.protocol), ("spec", "ports", i, "nodePort"))
    return out


class PortClaims:
    """Which Service holds each external (port, protocol): built once per apply, updated Service by Service, so a
    batch of thousands of ClusterIP Services costs one pass."""

    def __init__(self, services: Iterable[tuple[str, Service]]) -> None:
        self.owner: dict[Claim, str] = {}
        self.held: dict[str, set[Claim]] = {}
        for owner, service in services:
            self.replace(owner, service)

    def taken_for(self, owner: str) -> dict[Claim, str]:
        """The claims of every Service but `owner`."""
        return {claim: holder for claim, holder in self.owner.items() if holder != owner}

    def replace(self, owner: str, service: Service | None) -> None:
        for claim in self.held.pop(owner, ()):
            if self.owner.get(claim) == owner:
                del self.owner[claim]
        mine = set(claims(service)) if service is not None else set()
        if mine:
            self.held[owner] = mine
            for claim in mine:
                self.owner.setdefault(claim, owner)


def assign_node_ports(
    service: Service, *, previous: Service | None, taken: Mapping[Claim, str], owner: str
) -> Service:
    """`service` with its nodePorts: as given, else as `previous` had them (matched by port and protocol, as the
    API server does on update), else the first free one from a hash of `owner` and the port (so a lost store still
    tends to give the same number). `taken` maps the claims of every other Service to its "namespace/name"."""
    ports = list(service.ports)
    mine: set[Claim] = set()
    for i, p in enumerate(ports):
        if p.node_port is None and wants_node_ports(service):
            kept = _previous_node_port(previous, p)
            if kept is not None and (kept, p.protocol) not in taken and (kept, p.protocol) not in mine:
                ports[i] = dataclasses.replace(p, node_port=kept)
    for i, p in enumerate(ports):
        if p.node_port is not None:
            _check_free(p.node_port, p.protocol, ("spec", "ports", i, "nodePort"), taken, mine)
            mine.add((p.node_port, p.protocol))
        if service.type == "LoadBalancer":
            claim = (p.port, p.protocol)
            if claim in taken:
                raise PortClaimError(("spec", "ports", i, "port"),
                                     f"Invalid value: {p.port}: port {p.port}/{p.protocol} of the external address "
                                     f"is already used by Service {taken[claim]}")  # fmt: skip
    for i, p in enumerate(ports):
        if p.node_port is None and wants_node_ports(service):
            number = _allocate(owner, p, taken, mine)
            if number is None:
                raise PortClaimError(("spec", "ports", i, "nodePort"),
                                     f"Internal error: no free nodePort in {NODE_PORTS[0]}-{NODE_PORTS[1]}")
            ports[i] = dataclasses.replace(p, node_port=number)
            mine.add((number, p.protocol))
    if ports == list(service.ports):
        return service
    return dataclasses.replace(service, ports=tuple(ports), raw=_with_node_ports(service.raw, ports))


def _previous_node_port(previous: Service | None, port: ServicePort) -> int | None:
    if previous is None or previous.type == "ClusterIP":
        return None
    for old in previous.ports:
        if (old.port, old.protocol) == (port.port, port.protocol) and old.node_port is not None:
            return old.node_port
    return None


def _check_free(number: int, protocol: str, path: FieldPath, taken: Mapping[Claim, str], mine: set[Claim]) -> None:
    if (number, protocol) in mine:
        raise PortClaimError(path, f"Duplicate value: {number}")
    if (number, protocol) in taken:
        raise PortClaimError(path, f"Invalid value: {number}: provided port is already allocated")


def _allocate(owner: str, port: ServicePort, taken: Mapping[Claim, str], mine: set[Claim]) -> int | None:
    low, high = NODE_PORTS
    size = high - low + 1
    used = {n for n, _ in taken} | {n for n, _ in mine}  # a number is given once, whatever the protocol
    start = int.from_bytes(hashlib.sha256(f"{owner}/{port.port}/{port.protocol}".encode()).digest()[:4], "big")
    for step in range(size):
        number = low + (start + step) % size
        if number not in used:
            return number
    return None


def _with_node_ports(raw: Mapping, ports: list[ServicePort]) -> dict:
    """The manifest with each port's nodePort written in: what the store keeps, and what a restart loads."""
    out = copy.deepcopy(dict(raw))
    items = (out.get("spec") or {}).get("ports") or []
    for item, port in zip(items, ports, strict=False):
        if isinstance(item, dict) and port.node_port is not None:
            item["nodePort"] = port.node_port
    return out

"""Where the node's sidecar serves a Service from outside the mesh: a pure function of the Service and the agent's
--external addresses."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from meshd.model.endpoints import ExternalPort
from meshd.model.objects import Service

DEFAULT_EXTERNAL = ("127.0.0.1",)


def parse_external(text: str | None) -> tuple[str, ...]:
    """`--external ADDR[,ADDR]` -> the addresses (IPv4 or IPv6, each once); ValueError names a bad one."""
    if not text:
        return DEFAULT_EXTERNAL
    out: list[str] = []
    for part in text.split(","):
        part = part.strip().strip("[]")
        try:
            address = str(ipaddress.ip_address(part))
        except ValueError:
            raise ValueError(f"--external: {part!r} is not an IP address") from None
        if address not in out:
            out.append(address)
    if not out:
        raise ValueError("--external: no address given")
    return tuple(out)


def external_ports(service: Service, addresses: Sequence[str]) -> tuple[ExternalPort, ...]:
    """A LoadBalancer Service's ports, and the nodePorts of a NodePort or LoadBalancer one, on every address."""
    if service.type == "ClusterIP" or service.headless:
        return ()
    out: list[ExternalPort] = []
    for address in addresses:
        for p in service.ports:
            if service.type == "LoadBalancer":
                out.append(ExternalPort(address, p.port, p.protocol, p.name))
            if p.node_port is not None:
                out.append(ExternalPort(address, p.node_port, p.protocol, p.name))
    return tuple(out)


def load_balancer_status(service: Service, addresses: Sequence[str]) -> dict:
    """`status.loadBalancer`: one ingress entry per external address for a LoadBalancer Service."""
    if service.type != "LoadBalancer":
        return {}
    return {"ingress": [{"ip": a, "ipMode": "VIP"} for a in addresses]}

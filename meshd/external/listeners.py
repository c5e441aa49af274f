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


WILDCARDS = ("0.0.0.0",)


def expand_wildcards(addresses: Sequence[str], host: Sequence[str], *, exclude: Sequence[str] = ()) -> tuple[str, ...]:
    """`0.0.0.0` -> this host's IPv4 addresses (`host`) outside the `exclude` networks (the mesh's own bridge).

    The sidecar listens on Service addresses at their ports too, and Linux refuses a wildcard listener on a port
    that any address already listens on: concrete addresses keep a LoadBalancer port 80 apart from a Service's.
    Without any host address known the wildcard stays (and a clash is reported as a PortNotAvailable event)."""
    networks = [ipaddress.ip_network(n, strict=False) for n in exclude]
    concrete = [a for a in host if not any(ipaddress.ip_address(a) in n for n in networks)]
    out: list[str] = []
    for address in addresses:
        for a in (concrete or [address]) if address in WILDCARDS else [address]:
            if a not in out:
                out.append(a)
    return tuple(out)


def external_ports(service: Service, addresses: Sequence[str]) -> tuple[ExternalPort, ...]:
    """A LoadBalancer Service's ports, and the nodePorts of a NodePort or LoadBalancer one, on every address."""
    if service.type in ("ClusterIP", "ExternalName") or service.headless:
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

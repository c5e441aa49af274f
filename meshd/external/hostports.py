"""hostPorts: a container port also served on the node's external address, forwarding to that one pod.

Pure decisions: which (address, port, protocol) a pod spec claims, whether two claims collide (the scheduler's
NodePorts filter: a pod whose hostPort another running pod holds stays Pending), and the Service-shaped record
the node's sidecar serves it with (one endpoint: the pod; never in DNS, mDNS or the API's Services).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from meshd.model.endpoints import ExternalPort, PortInfo, ServiceInfo, ServiceKey
from meshd.model.objects import PodSpec

UNSCHEDULABLE = "node(s) didn't have free ports for the requested pod ports"  # the scheduler's words
WILDCARDS = ("0.0.0.0", "::")


@dataclass(frozen=True)
class HostPort:
    address: str  # the container port's hostIP, else each --external address
    port: int
    protocol: str
    container_port: int


def host_ports(spec: PodSpec, external: Sequence[str]) -> tuple[HostPort, ...]:
    """Every hostPort of the pod's containers, on its hostIP (if set) or on every external address."""
    out: list[HostPort] = []
    for container in spec.containers:
        for p in container.ports:
            if p.host_port is None:
                continue
            for address in (p.host_ip,) if p.host_ip else external:
                out.append(HostPort(address, p.host_port, p.protocol, p.container_port))
    return tuple(dict.fromkeys(out))


def collides(wanted: Iterable[HostPort], used: Iterable[HostPort]) -> bool:
    """Kubernetes' rule: the same port and protocol on the same address, or on a wildcard address."""
    held = [(u.address, u.port, u.protocol) for u in used]
    for w in wanted:
        for address, port, protocol in held:
            if (port, protocol) == (w.port, w.protocol) and (
                address == w.address or address in WILDCARDS or w.address in WILDCARDS
            ):
                return True
    return False


def host_port_key(namespace: str, pod: str) -> ServiceKey:
    """The record's key: a colon, which no Service name may hold, keeps it apart from every Service."""
    return ServiceKey(namespace, f"{pod}:hostports")


def pod_of(key: ServiceKey) -> str | None:
    """The pod whose hostPorts `key` names, or None for a Service's key."""
    return key.name.removesuffix(":hostports") if key.name.endswith(":hostports") else None


def host_port_service(namespace: str, pod: str, ports: Sequence[HostPort]) -> ServiceInfo:
    """What the sidecar serves a pod's hostPorts with: a port per (hostPort, protocol), each to its container
    port, listened on at the hostPort's address; no cluster address."""
    numbered: dict[tuple[int, str], PortInfo] = {}
    for hp in ports:
        numbered.setdefault((hp.port, hp.protocol),
                            PortInfo(f"host-{hp.port}-{hp.protocol.lower()}", hp.port, hp.container_port, hp.protocol))
    external = tuple(ExternalPort(hp.address, hp.port, hp.protocol, numbered[(hp.port, hp.protocol)].name)
                     for hp in ports)  # fmt: skip
    return ServiceInfo(host_port_key(namespace, pod), None, tuple(numbered.values()), external=external)

"""Pure decisions of the registry: which pods back a Service, on which ports, and what changed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from meshd.model.endpoints import Endpoint, ServiceInfo
from meshd.model.objects import LabelSelector


@dataclass(frozen=True)
class PodRecord:
    """What the registry needs to know of a pod: where it is, what it exposes, whether it is ready."""

    namespace: str
    name: str
    labels: Mapping[str, str]
    address: str | None
    named_ports: Mapping[str, int] = field(default_factory=dict)  # containerPort name -> number
    ready: bool = False
    reason: str = ""
    hostname: str = ""
    subdomain: str = ""
    terminating: bool = False
    node: str = ""  # another node's pod (meshd/cluster/remote.py): that node; "": this node's
    gateway: str = ""  # and where that node's mesh gateway listens ("host:port")


@dataclass(frozen=True)
class ServiceRecord:
    info: ServiceInfo
    selector: Mapping[str, str]
    pod: str | None = None  # a pod's hostPorts (meshd/external/hostports.py): that pod, ready or not, is the endpoint


def resolve_ports(service: ServiceInfo, pod: PodRecord) -> dict[str, int] | None:
    """Service port name -> the pod's port; None when a port cannot be resolved on this pod."""
    ports: dict[str, int] = {}
    for port in service.ports:
        target = port.target_port
        if isinstance(target, str) and not target.isdigit():
            if target not in pod.named_ports:
                return None
            ports[port.name] = pod.named_ports[target]
        else:
            ports[port.name] = int(target)
    return ports


def endpoint_for(service: ServiceRecord, pod: PodRecord, *, node: str = "") -> Endpoint | None:
    """The pod's endpoint in the Service: when it matches, has an address and every port, and is not terminating.

    A terminating pod is not an endpoint at all (it leaves before it is stopped, so nothing new reaches it), and an
    ExternalName Service has none whatever its selector (as Kubernetes' EndpointSlice controller skips it).
    """
    if pod.namespace != service.info.key.namespace or pod.address is None or pod.terminating:
        return None
    if service.info.external_name:
        return None
    if service.pod is not None:
        if pod.name != service.pod:
            return None
    elif not LabelSelector(service.selector).matches(pod.labels):
        return None
    ports = resolve_ports(service.info, pod)
    if ports is None:
        return None
    return Endpoint(
        name=pod.name,
        address=pod.address,
        ports=ports,
        ready=pod.ready or service.pod is not None,  # a hostPort forwards whatever the readiness (as portmap)
        reason="" if pod.ready or service.pod is not None else (pod.reason or "not ready"),
        node=pod.node or node,
        hostname=pod.hostname if pod.hostname and pod.subdomain == service.info.key.name else "",
        gateway=pod.gateway,
    )


def endpoints_for(service: ServiceRecord, pods: Iterable[PodRecord], *, node: str = "") -> dict[str, Endpoint]:
    """The endpoints of a Service, keyed by pod name."""
    found = (endpoint_for(service, pod, node=node) for pod in pods)
    return {ep.name: ep for ep in found if ep is not None}

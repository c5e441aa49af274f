"""A node's controller and its Services: the cluster address a Service keeps, asks for or is given, the external
ports (nodePorts) it claims, and its record in the registry (what DNS, mDNS, the API and the sidecars serve)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from meshd.controller.clusterip import AddressPlan, ClusterIPError
from meshd.controller.ingress import backend_problems
from meshd.controller.records import ObjectRecord
from meshd.controller.servicetype import TypeFieldError, settle_type_change
from meshd.external.listeners import external_ports
from meshd.external.nodeports import PortClaimError, PortClaims, assign_node_ports
from meshd.manifests import ManifestError
from meshd.model.endpoints import PortInfo, ServiceInfo, ServiceKey
from meshd.model.ingress import Ingress
from meshd.model.objects import KubeObject, Service

if TYPE_CHECKING:
    from meshd.controller.loop import Controller


def service_of(objects: dict[tuple[str, str, str], ObjectRecord]) -> Callable[[str, str], Service | None]:
    """A lookup of the applied Services by namespace and name."""
    def service(namespace: str, name: str) -> Service | None:
        record = objects.get(("Service", namespace, name))
        return record.obj if record is not None and isinstance(record.obj, Service) else None
    return service


def ingress_warnings(objects: Iterable[KubeObject], service: Callable[[str, str], Service | None]) -> list[str]:
    """An applied Ingress naming a Service or port that does not exist (it answers 503 until it does)."""
    return [f"Ingress {o.metadata.namespace}/{o.metadata.name}: {problem}" for o in objects
            if isinstance(o, Ingress) and o.served for problem in backend_problems(o, service)]


def assign_cluster_ip(c: Controller, service: Service, existing: ObjectRecord | None, plan: AddressPlan,
                      source: str) -> Service:
    """The Service with the address it keeps, asks for or is given (stored with it: the same on every node)."""
    before = existing.obj if existing is not None and isinstance(existing.obj, Service) else None
    try:
        service = settle_type_change(service, before)  # e.g. the clusterIP a Service turned ExternalName had
    except TypeFieldError as error:
        raise ManifestError(error.message, source=source, kind="Service", name=service.metadata.name,
                            path=error.path) from None
    published = c.registry.service(ServiceKey(service.metadata.namespace, service.metadata.name))
    current = (before.cluster_ip or (published.address if published else None)) if before else None
    try:
        return plan.assign(service, current=current if service.has_address else None)
    except ClusterIPError as error:
        raise ManifestError(str(error), source=source, kind="Service", name=service.metadata.name,
                            path=("spec", "clusterIP")) from None


def claim_external_ports(service: Service, existing: ObjectRecord | None, index: PortClaims, source: str) -> Service:
    """The Service with its nodePorts given or allocated; a port another Service holds fails the apply."""
    owner = f"{service.metadata.namespace}/{service.metadata.name}"
    previous = existing.obj if existing is not None and isinstance(existing.obj, Service) else None
    if service.type == "ClusterIP" and (previous is None or previous.type == "ClusterIP"):
        return service  # claims nothing, held nothing: the common case costs nothing
    try:
        service = assign_node_ports(service, previous=previous, taken=index.taken_for(owner), owner=owner)
    except PortClaimError as error:
        raise ManifestError(error.message, source=source, kind="Service", name=service.metadata.name,
                            path=error.path) from None
    index.replace(owner, service)
    return service


def publish_service(c: Controller, service: Service) -> None:
    """The Service's record in the registry, with its address (announced to the node when it changes)."""
    key = ServiceKey(service.metadata.namespace, service.metadata.name)
    # the stored address; one stored before Services kept theirs gets its hash's, as it always did
    address = service.cluster_ip or c.addresses.allocate(key) if service.has_address else None
    if address is None:
        c.addresses.release(key)  # e.g. turned ExternalName: its old address is free again
    previous = c.registry.service(key)
    on_address = c._on_service_address
    if previous and previous.address and previous.address != address and on_address:
        on_address(previous.address, False)
    if address and on_address:
        on_address(address, True)
    info = ServiceInfo(
        key=key,
        address=address,
        ports=tuple(PortInfo(p.name, p.port, p.target_port, p.protocol, p.app_protocol) for p in service.ports),
        annotations=dict(service.metadata.annotations),
        external=external_ports(service, c.external),
        traffic_distribution=service.traffic_distribution,
        external_name=service.external_name if service.type == "ExternalName" else None,
    )
    c.registry.upsert_service(info, dict(service.selector))


def unpublish_service(c: Controller, namespace: str, name: str) -> None:
    """A deleted Service's record and address go."""
    key = ServiceKey(namespace, name)
    address = c.registry.service(key)
    c.registry.delete_service(key)
    c.addresses.release(key)
    if address and address.address and c._on_service_address:
        c._on_service_address(address.address, False)


__all__ = ["assign_cluster_ip", "claim_external_ports", "ingress_warnings", "publish_service", "service_of",
           "unpublish_service"]

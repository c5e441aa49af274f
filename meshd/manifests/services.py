"""v1 Service specs: selector, ports, clusterIP (None = headless), type ClusterIP, NodePort or LoadBalancer
(the last two listen on the agent's --external addresses: meshd/external/), or ExternalName (a DNS CNAME only:
no address, no endpoints, no listener). What a Service may keep of its previous type when it changes type is
decided with the stored object at hand (meshd/controller/servicetype.py), so a clusterIP, nodePort or externalName
that another type would refuse is read here and judged there."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, cast

from meshd.external.nodeports import NODE_PORTS
from meshd.manifests import names
from meshd.manifests.errors import FieldPath
from meshd.manifests.meta import read_labels
from meshd.manifests.probes import read_port_ref
from meshd.manifests.reader import MISSING, DocumentReader
from meshd.model.objects import ObjectMeta, Service, ServicePort
from sidecar.config import (
    LB_ANNOTATION,
    OPAQUE_PORTS_ANNOTATION,
    RETRIES_ANNOTATION,
    TIMEOUT_ANNOTATION,
    config_from_annotations,
)

_SPEC: FieldPath = ("spec",)
SERVICE_IGNORED: Mapping[str, str] = {
    "clusterIPs": "ignored (meshd uses clusterIP)",
    "ipFamilies": "ignored (IPv4 only)",
    "ipFamilyPolicy": "ignored (IPv4 only)",
    "internalTrafficPolicy": "ignored (one node)",
    "healthCheckNodePort": "ignored (one node: every endpoint is local)",
    "sessionAffinity": "ignored: the sidecar balances every request by its meshd.io/lb-algorithm",
    "sessionAffinityConfig": "ignored: the sidecar balances every request by its meshd.io/lb-algorithm",
    "publishNotReadyAddresses": "not supported yet (ignored): only ready endpoints are published",
}

# what meshd's one node cannot do honestly is refused, naming the field
EXTERNAL_UNSUPPORTED: Mapping[str, str] = {
    "externalIPs": "not supported: meshd listens on the agent's --external addresses (type LoadBalancer or "
    "NodePort)",
    "loadBalancerSourceRanges": "not supported: meshd does not filter clients by address; choose --external "
    "addresses that only the intended clients reach",
    "loadBalancerIP": "not supported: a LoadBalancer Service gets every --external address of the agent",
    "loadBalancerClass": "not supported: meshd is the only load balancer implementation",
}


def read_service(reader: DocumentReader, doc: Mapping[str, Any], metadata: ObjectMeta) -> Service:
    spec_value = reader.get(doc, "spec", ())
    spec = {} if spec_value is MISSING else reader.mapping(spec_value, _SPEC)
    reader.check_fields(
        spec,
        _SPEC,
        known=("selector", "ports", "clusterIP", "type", "externalTrafficPolicy", "allocateLoadBalancerNodePorts",
               "trafficDistribution", "externalName"),
        ignored=SERVICE_IGNORED,
        unsupported=EXTERNAL_UNSUPPORTED,
    )
    service_type = reader.choice(
        spec, "type", _SPEC, ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"), default="ClusterIP"
    )
    external_name = _read_external_name(reader, spec, required=service_type == "ExternalName")
    # one node: Cluster and Local reach the same endpoints (and the client's address is the sidecar's either way)
    reader.choice(spec, "externalTrafficPolicy", _SPEC, ("Cluster", "Local"), default="Cluster")
    allocate = reader.boolean(spec, "allocateLoadBalancerNodePorts", _SPEC, default=True)
    # PreferClose (Kubernetes 1.31): a node's sidecar keeps to the endpoints on its node while one is ready
    distribution = reader.string(spec, "trafficDistribution", _SPEC) or None
    if distribution not in (None, "PreferClose"):
        raise reader.fail(_SPEC + ("trafficDistribution",), f'unsupported value "{distribution}" (supported: '
                          "PreferClose)")
    cluster_ip = reader.string(spec, "clusterIP", _SPEC) or None
    headless = cluster_ip == "None" and service_type != "ExternalName"  # ExternalName: kept to be judged
    if cluster_ip is not None and cluster_ip != "None":
        try:
            ipaddress.IPv4Address(cluster_ip)
        except ValueError:
            raise reader.fail(
                _SPEC + ("clusterIP",), f'expected an IPv4 address or "None", got "{cluster_ip}"'
            ) from None
    if headless and service_type not in ("ClusterIP", "ExternalName"):
        raise reader.fail(_SPEC + ("clusterIP",), f"a {service_type} Service may not be headless")
    _check_mesh_annotations(reader, metadata)
    ports = _read_ports(reader, spec, service_type)
    if not ports and not headless and service_type != "ExternalName":
        raise reader.fail(_SPEC + ("ports",), "at least one port is required (unless clusterIP is None or type is "
                          "ExternalName)")
    return Service(
        metadata=metadata,
        selector=read_labels(reader, spec, "selector", _SPEC),
        ports=ports,
        headless=headless,
        cluster_ip=None if headless else cluster_ip,
        raw=doc,
        type=cast(Any, service_type),
        allocate_node_ports=bool(allocate),
        traffic_distribution=distribution,
        external_name=external_name,
    )


def _read_external_name(reader: DocumentReader, spec: Mapping[str, Any], *, required: bool) -> str | None:
    """spec.externalName without its trailing dot (one is allowed): a DNS-1123 subdomain, so lowercase."""
    path = _SPEC + ("externalName",)
    value = reader.string(spec, "externalName", _SPEC)
    clean = (value or "").removesuffix(".")
    if not clean:
        if required:
            raise reader.fail(path, "required when `type` is 'ExternalName'")
        return None
    reader.check_name(clean, path, names.dns1123_subdomain)
    return clean


def _read_ports(reader: DocumentReader, spec: Mapping[str, Any], service_type: str) -> tuple[ServicePort, ...]:
    items = reader.sequence(spec, "ports", _SPEC)
    ports: list[ServicePort] = []
    seen_names: set[str] = set()
    seen_ports: set[tuple[int, str]] = set()
    for i, item in enumerate(items):
        path = _SPEC + ("ports", i)
        port = reader.mapping(item, path)
        reader.check_fields(
            port,
            path,
            known=("name", "port", "targetPort", "protocol", "appProtocol", "nodePort"),
        )
        name = reader.string(port, "name", path) or ""
        if name:
            reader.check_name(name, path + ("name",), names.dns1123_label)
        elif len(items) > 1:
            raise reader.fail(path + ("name",), "required when a Service has more than one port")
        if name in seen_names and name:
            raise reader.fail(path + ("name",), f'duplicate port name "{name}"')
        seen_names.add(name)
        number = reader.integer(port, "port", path, required=True, minimum=1, maximum=65535)
        assert number is not None
        protocol = reader.choice(port, "protocol", path, ("TCP", "UDP"), default="TCP")
        if (number, protocol) in seen_ports:
            raise reader.fail(path + ("port",), f"duplicate port {number}/{protocol}")
        seen_ports.add((number, protocol))
        target = port.get("targetPort")
        target_port = (
            number if target is None else read_port_ref(reader, target, path + ("targetPort",), ports=None)
        )
        app_protocol = reader.string(port, "appProtocol", path, allow_empty=False) or None
        node_port = reader.integer(port, "nodePort", path, minimum=NODE_PORTS[0], maximum=NODE_PORTS[1])
        if node_port is not None and service_type == "ClusterIP":  # ExternalName: judged with the stored one
            raise reader.fail(path + ("nodePort",), "may not be used when `type` is 'ClusterIP'")
        ports.append(
            ServicePort(
                port=number, target_port=target_port, name=name, protocol=cast(Any, protocol),
                app_protocol=app_protocol, node_port=node_port,
            )
        )
    return tuple(ports)


def _check_mesh_annotations(reader: DocumentReader, metadata: ObjectMeta) -> None:
    """meshd.io/* annotations steer the sidecars: a bad value fails here rather than being dropped there."""
    known = (LB_ANNOTATION, TIMEOUT_ANNOTATION, RETRIES_ANNOTATION, OPAQUE_PORTS_ANNOTATION)
    for key in metadata.annotations:
        if key.startswith("meshd.io/") and key not in known:
            reader.warn(
                ("metadata", "annotations", key), f"unknown meshd annotation (known: {', '.join(known)})"
            )
    for problem in config_from_annotations(metadata.annotations).problems:
        key, _, message = problem.partition(": ")
        raise reader.fail(("metadata", "annotations", key), message)

"""Which DNS-SD adverts the node should publish: a pure decision from the registry's Services and ready endpoints.

Per Service address, not per endpoint: a Service with a VIP is advertised once per Service port, pointing at the
VIP and the Service port, because that is where the node's sidecar listens and balances; a LAN client then goes
through the sidecar like every other client (retries, outlier ejection, draining) instead of pinning one pod that
may be drained a second later. A headless Service has no VIP and no sidecar in front, so it is advertised once per
ready endpoint, at the endpoint's address and port (as its DNS A records are). An ExternalName Service is never
advertised: it has no endpoints and no address on this LAN, and DNS-SD has no alias record to point elsewhere.

Names follow RFC 6763: the instance is ONE label. Zeroconf cannot escape a dot inside a label, so an instance written
`web.default` would go out as two labels, which Avahi/Bonjour reject ("Failed to split service name"). The instance
is therefore `web@default` (`@` cannot occur in Kubernetes names, so it is unambiguous); `web@default:metrics` when
a Service has several ports of one type; `db@default:db-0` for a headless Service's endpoint. The TXT record names
the namespace, Service, port, the advertising node (`node`) and the nodes whose ready endpoints serve it (`nodes`,
comma-separated), so a browser need not parse the instance. In a cluster one agent (the leader) advertises for all.

The SRV target is a host name made from the node and the advertised address (`node1-10-213-128-5.local.`): zeroconf
answers a host's A query with the addresses of every advert on that host, so one host name per address keeps a
client from reaching one Service's VIP on another Service's port.

A subtype (`_meshd._sub._http._tcp.local.`) is not published: zeroconf answers a registration's PTR only for its own
type, so a subtype needs a second registration of the same instance name, which zeroconf refuses.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from meshd.model.endpoints import Endpoint, PortInfo, ServiceInfo, ServiceKey

_KNOWN_TYPES = ("http", "https", "grpc")  # a port named X or X-anything is served as X
_FALLBACK_TYPE = "meshd"
_MAX_LABEL = 63
_MAX_TXT = 255  # one TXT string (RFC 6763 6.1)


@dataclass(frozen=True)
class Advert:
    """One DNS-SD service instance: `instance.type_` -> SRV `server:port`, A `addresses`, TXT `properties`."""

    instance: str  # one DNS label
    type_: str  # "_http._tcp.local."
    port: int
    server: str  # "host.local."
    addresses: tuple[str, ...]
    properties: tuple[tuple[str, str], ...]  # TXT key=value pairs, in order

    @property
    def name(self) -> str:
        return f"{self.instance}.{self.type_}"


@dataclass(frozen=True)
class AdvertChanges:
    """What to do to go from the published adverts to the desired ones (keys are advert names)."""

    register: tuple[Advert, ...] = ()
    update: tuple[Advert, ...] = ()
    unregister: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.register or self.update or self.unregister)


def is_service_name(name: str) -> bool:
    """RFC 6335 service name: 1-15 of [a-z0-9-], a letter somewhere, no hyphen at the ends or doubled."""
    return (
        re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?", name.lower()) is not None
        and "--" not in name
        and any(c.isalpha() for c in name)
    )


def service_type(port: PortInfo) -> str | None:
    """The DNS-SD type a Service port implies (`_http._tcp.local.`), or None when DNS-SD cannot name it (SCTP)."""
    protocol = port.protocol.upper()
    if protocol not in ("TCP", "UDP"):
        return None
    transport = "_tcp" if protocol == "TCP" else "_udp"
    name = port.name.lower()
    if protocol == "TCP":
        if name == "":
            return "_http._tcp.local."  # meshd's sidecar proxies HTTP: an unnamed port is HTTP
        for known in _KNOWN_TYPES:
            if name == known or name.startswith(known + "-"):
                return f"_{known}._tcp.local."
    if is_service_name(name):
        return f"_{name}.{transport}.local."
    return f"_{_FALLBACK_TYPE}.{transport}.local."


def desired_adverts(
    services: Iterable[ServiceInfo],
    ready_endpoints_by_key: Mapping[ServiceKey, Iterable[Endpoint]],
    *,
    node_name: str,
    host_address: str | None = None,
) -> dict[str, Advert]:
    """Every advert the node should publish, keyed by advert name (see the module docstring for the choices).

    `host_address`, when given, is an extra address on which the node serves every Service port (e.g. its LAN
    address when the sidecar binds the host); it is added to VIP adverts, never to headless endpoint adverts.
    """
    adverts: dict[str, Advert] = {}
    for service in services:
        ready = tuple(ready_endpoints_by_key.get(service.key, ()))
        if not ready or service.external_name:  # an ExternalName Service is a DNS alias: nothing to advertise
            continue
        nodes = node_list({e.node or node_name for e in ready})
        typed = [(port, t) for port in service.ports if (t := service_type(port)) is not None]
        type_counts: dict[str, int] = {}
        for _, t in typed:
            type_counts[t] = type_counts.get(t, 0) + 1
        for port, type_ in typed:
            port_suffix = f":{port.name}" if type_counts[type_] > 1 and port.name else ""
            base = f"{service.key.name}@{service.key.namespace}"
            if service.address is not None:
                addresses = (service.address,) + ((host_address,) if host_address else ())
                _add(
                    adverts,
                    _advert(
                        service,
                        port,
                        type_,
                        instance=base + port_suffix,
                        port_number=port.port,
                        node_name=node_name,
                        addresses=addresses,
                        endpoint=None,
                        nodes=nodes,
                    ),
                )
                continue
            for endpoint in sorted(ready, key=lambda e: e.name):
                if port.name not in endpoint.ports:
                    continue
                _add(
                    adverts,
                    _advert(
                        service,
                        port,
                        type_,
                        instance=f"{base}:{endpoint.name}{port_suffix}",
                        port_number=endpoint.ports[port.name],
                        node_name=node_name,
                        addresses=(endpoint.address,),
                        endpoint=endpoint,
                        nodes=endpoint.node or node_name,
                    ),
                )
    return adverts


def plan_changes(desired: Mapping[str, Advert], published: Mapping[str, Advert]) -> AdvertChanges:
    """Register what is new, update what changed (same name), unregister what is no longer desired."""
    return AdvertChanges(
        register=tuple(desired[name] for name in sorted(desired) if name not in published),
        update=tuple(
            desired[name]
            for name in sorted(desired)
            if name in published and published[name] != desired[name]
        ),
        unregister=tuple(name for name in sorted(published) if name not in desired),
    )


def node_list(nodes: Iterable[str]) -> str:
    """`a,b,c` (sorted), within one TXT string (255 bytes with `nodes=`): the rest counted as `+N`."""
    names = sorted(nodes)
    shown: list[str] = []
    for i, name in enumerate(names):
        rest = len(names) - i - 1  # if the next one does not fit, this (with `+rest`) is what goes out
        if len(("nodes=" + ",".join([*shown, name, *([f"+{rest}"] if rest else [])])).encode()) > _MAX_TXT:
            return ",".join([*shown, f"+{len(names) - i}"])
        shown.append(name)
    return ",".join(shown)


def host_label(node_name: str, address: str) -> str:
    """A host name label for `address` on `node_name`: lowercase letters, digits and hyphens, at most 63 bytes."""
    text = f"{node_name}-{address}".lower()
    return _fit(re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", text)).strip("-") or "meshd")


def _advert(
    service: ServiceInfo,
    port: PortInfo,
    type_: str,
    *,
    instance: str,
    port_number: int,
    node_name: str,
    addresses: tuple[str, ...],
    endpoint: Endpoint | None,
    nodes: str,
) -> Advert:
    properties = [
        ("namespace", service.key.namespace),
        ("service", service.key.name),
        ("port", port.name),
        ("node", node_name),
        ("nodes", nodes),
        ("meshd", "1"),
    ]
    if endpoint is not None:
        properties.append(("endpoint", endpoint.name))
    return Advert(
        instance=_fit(instance),
        type_=type_,
        port=port_number,
        server=f"{host_label(node_name, addresses[0])}.local.",
        addresses=addresses,
        properties=tuple(properties),
    )


def _add(adverts: dict[str, Advert], advert: Advert) -> None:
    adverts.setdefault(advert.name, advert)  # only a truncated-name collision could repeat a name


def _fit(label: str) -> str:
    """`label` if it fits one DNS label (63 bytes), else a prefix and a hash of the whole, so names stay unique."""
    if len(label.encode()) <= _MAX_LABEL:
        return label
    digest = hashlib.sha1(label.encode()).hexdigest()[:8]
    prefix = label.encode()[: _MAX_LABEL - 9].decode(errors="ignore")
    return f"{prefix}~{digest}"

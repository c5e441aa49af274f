"""Which names the host's resolver should know: hosts-file lines computed from the registry (pure).

The names are the DNS zone's (meshd/dns/zone.py), in the three forms an app on the host types:

    <svc>.<ns>.svc.<zone>  <svc>.<ns>.svc  <svc>.<ns>          the Service's address (headless: each ready endpoint)
    <host>.<svc>.<ns>.svc.<zone>  ...svc  <host>.<svc>.<ns>    a ready endpoint with a hostname (StatefulSet pods)

An ExternalName Service is a CNAME, which a hosts file cannot say: when its target is another Service of the zone
(directly or through more aliases), its names get that Service's addresses, as the DNS answer ends with them; a
target outside the zone gives no line (the resolver in front of the file knows nothing of it).

IPv4 only, as the zone. Lines are sorted, so the same registry always gives the same text (no rewrite churn).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from meshd.model.endpoints import Endpoint, ServiceInfo, ServiceKey


@dataclass(frozen=True, order=True)
class HostEntry:
    """One hosts-file line: an address and its names, the canonical (fully qualified) name first."""

    address: str
    names: tuple[str, ...]

    def line(self) -> str:
        return f"{self.address}\t{' '.join(self.names)}"


def host_entries(
    services: Iterable[ServiceInfo],
    endpoints: Mapping[ServiceKey, Iterable[Endpoint]],
    *,
    zone: str = "cluster.local",
) -> tuple[HostEntry, ...]:
    """The hosts lines for these Services: one per Service address (or ready endpoint of a headless Service),
    and one per ready endpoint that has a hostname (its own name under the Service)."""
    apex = zone.strip(".").lower()
    entries: set[HostEntry] = set()
    by_name = {f"{s.key.name}.{s.key.namespace}.svc.{apex}".lower(): s for s in services}
    for service in by_name.values():
        base = f"{service.key.name}.{service.key.namespace}".lower()
        ready = [e for e in endpoints.get(service.key, ()) if e.ready and _ipv4(e.address)]
        target = _alias_target(service, by_name)
        entries.update(HostEntry(address, _forms(base, apex)) for address in _addresses(target, endpoints))
        if target is service:
            entries.update(
                HostEntry(e.address, _forms(f"{e.hostname.lower()}.{base}", apex)) for e in ready if e.hostname
            )
    return tuple(sorted(entries, key=lambda e: (e.names, ipaddress.IPv4Address(e.address))))


def _alias_target(service: ServiceInfo, by_name: Mapping[str, ServiceInfo], *, limit: int = 8) -> ServiceInfo | None:
    """The Service an ExternalName Service's CNAME chain ends at in the zone (the Service itself when it is not an
    alias); None when it leaves the zone, loops or goes nowhere."""
    for _ in range(limit):
        if not service.external_name:
            return service
        found = by_name.get(service.external_name.lower().rstrip("."))
        if found is None:
            return None
        service = found
    return None


def _addresses(service: ServiceInfo | None, endpoints: Mapping[ServiceKey, Iterable[Endpoint]]) -> list[str]:
    """A Service's addresses as its A records give them: its own, or each ready endpoint's when headless."""
    if service is None:
        return []
    if service.headless:
        return [e.address for e in endpoints.get(service.key, ()) if e.ready and _ipv4(e.address)]
    return [service.address] if service.address and _ipv4(service.address) else []


def hosts_lines(entries: Iterable[HostEntry]) -> tuple[str, ...]:
    return tuple(entry.line() for entry in entries)


def _forms(name: str, apex: str) -> tuple[str, ...]:
    return (f"{name}.svc.{apex}", f"{name}.svc", name)


def _ipv4(address: str) -> bool:
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        return False
    return True

"""Which names the host's resolver should know: hosts-file lines computed from the registry (pure).

The names are the DNS zone's (meshd/dns/zone.py), in the three forms an app on the host types:

    <svc>.<ns>.svc.<zone>  <svc>.<ns>.svc  <svc>.<ns>          the Service's address (headless: each ready endpoint)
    <host>.<svc>.<ns>.svc.<zone>  ...svc  <host>.<svc>.<ns>    a ready endpoint with a hostname (StatefulSet pods)

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
    for service in services:
        base = f"{service.key.name}.{service.key.namespace}".lower()
        ready = [e for e in endpoints.get(service.key, ()) if e.ready and _ipv4(e.address)]
        if service.headless:
            addresses = [e.address for e in ready]
        else:
            addresses = [service.address] if service.address and _ipv4(service.address) else []
        entries.update(HostEntry(address, _forms(base, apex)) for address in addresses)
        entries.update(
            HostEntry(e.address, _forms(f"{e.hostname.lower()}.{base}", apex)) for e in ready if e.hostname
        )
    return tuple(sorted(entries, key=lambda e: (e.names, ipaddress.IPv4Address(e.address))))


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

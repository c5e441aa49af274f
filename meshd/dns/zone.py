"""What the DNS server answers: a pure lookup over an immutable snapshot of Services and endpoints.

Names follow the Kubernetes DNS specification (https://github.com/kubernetes/dns/blob/master/docs/specification.md),
with meshd's rule that SRV records list the ready endpoints of every Service, not only of headless ones:

    <svc>.<ns>.svc.<zone>                A    the Service's address (headless: one per ready endpoint)
    <svc>.<ns>.svc.<zone>                CNAME its externalName (type ExternalName: that name only, no SRV)
    <svc>.<ns>.svc.<zone>                SRV  one per ready endpoint and port
    _<port>._<proto>.<svc>.<ns>.svc.<zone> SRV one per ready endpoint for that named port
    <host>.<svc>.<ns>.svc.<zone>         A    a ready endpoint (host = its hostname, else its dashed address)
    <a-b-c-d>.<ns>.pod.<zone>            A    a pod of this agent (or known through any Service's endpoints)
    <zone>                               SOA, NS;   ns.dns.<zone> A (when the server's address is known)
    dns-version.<zone>                   TXT  "1.1.0"
    <d>.<c>.<b>.<a>.in-addr.arpa         PTR  the Service (its address), the endpoint name (a ready endpoint:
                                              <hostname>.<subdomain>.<ns>.svc.<zone> for a StatefulSet's pod), else
                                              the pod's <a-b-c-d>.<ns>.pod.<zone>

Decisions (the CoreDNS `file` plugin is the model): a name outside the zone -> REFUSED; reverse names meshd does
not know -> REFUSED too (it is not authoritative for in-addr.arpa); a name in the zone that
does not exist -> NXDOMAIN with the SOA in authority; a name that exists (or is an empty non-terminal, like
`default.svc.<zone>`) without the asked type -> NOERROR and no answer, SOA in authority. IPv4 only: AAAA is NODATA.
A name with a CNAME answers it to every type but CNAME itself, followed (as CoreDNS's kubernetes plugin does) by
what the zone knows of the target when the target is in the zone (another Service: its A records in the same
answer; a chain of ExternalName Services: each CNAME; the rcode is the last name's, RFC 6604). A target outside the
zone is named in the answer (`outside`): the responder may append its records from the host's resolvers
(meshd.dns.upstream); meshd recurses for nobody else.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from meshd.model.endpoints import Endpoint, PortInfo, ServiceInfo, ServiceKey

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
A, NS, CNAME, SOA, PTR, TXT, AAAA, SRV, ANY = 1, 2, 5, 6, 12, 16, 28, 33, 255
TYPE_NAMES = {A: "A", NS: "NS", CNAME: "CNAME", SOA: "SOA", PTR: "PTR", TXT: "TXT", AAAA: "AAAA", SRV: "SRV",
              ANY: "ANY"}
MAX_CHAIN = 8  # CNAMEs followed in one answer (a loop of ExternalName Services ends there)

DEFAULT_ZONE = "cluster.local"
DEFAULT_TTL = 5
SCHEMA_VERSION = "1.1.0"


@dataclass(frozen=True, order=True)
class Record:
    """One resource record: owner name (lowercase, absolute), type, TTL, rdata in presentation format."""

    name: str
    rtype: int
    ttl: int
    data: str

    def __str__(self) -> str:
        return f"{self.name} {self.ttl} IN {TYPE_NAMES.get(self.rtype, f'TYPE{self.rtype}')} {self.data}"


@dataclass(frozen=True)
class Answer:
    rcode: int
    answer: tuple[Record, ...] = ()
    authority: tuple[Record, ...] = ()
    additional: tuple[Record, ...] = ()
    outside: str = ""  # the answer's CNAME chain ends at this name outside the zone (meshd.dns.upstream)


class EndpointSource(Protocol):
    """A registry as DNS reads it."""

    def services(self) -> list[ServiceInfo]: ...

    def service(self, key: ServiceKey) -> ServiceInfo | None: ...

    def endpoints(self, key: ServiceKey) -> tuple[Endpoint, ...]: ...


PodAddress = tuple[str, str]  # (namespace, IPv4 address) of a pod the agent runs


@dataclass(frozen=True, eq=False)
class Snapshot:
    """The Services and their endpoints (ready or not) at one moment; `serial` becomes the SOA serial."""

    services: tuple[ServiceInfo, ...] = ()
    endpoints: Mapping[ServiceKey, tuple[Endpoint, ...]] = field(default_factory=dict)
    serial: int = 1
    pods: tuple[PodAddress, ...] = ()

    @classmethod
    def of(cls, source: EndpointSource, *, serial: int = 1) -> Snapshot:
        """Reads a registry (anything with `services()` and `endpoints(key)`, and `pod_addresses()` when it
        has one) into a snapshot."""
        services = tuple(source.services())
        return cls(services, {s.key: tuple(source.endpoints(s.key)) for s in services}, serial,
                   pod_addresses(source))


def pod_addresses(source: object) -> tuple[PodAddress, ...]:
    """The source's pods' (namespace, address) pairs; none when it does not know its pods."""
    read = getattr(source, "pod_addresses", None)
    return tuple(read()) if read is not None else ()


def lookup(
    snapshot: Snapshot,
    qname: str,
    qtype: int,
    *,
    zone: str = DEFAULT_ZONE,
    ttl: int = DEFAULT_TTL,
    ns_address: str | None = None,
) -> Answer:
    """The answer to `qname`/`qtype` from `snapshot` (qname case-insensitive, trailing dot optional)."""
    return _compiled(snapshot, zone, ttl, ns_address).lookup(qname, qtype)


@functools.lru_cache(maxsize=8)
def _compiled(snapshot: Snapshot, zone: str, ttl: int, ns_address: str | None) -> Zone:
    return Zone.build(snapshot, zone=zone, ttl=ttl, ns_address=ns_address)


Nodes = dict[str, dict[int, tuple[Record, ...]]]


@dataclass(frozen=True, eq=False)
class _Part:
    """One Service's names (all under `<svc>.<ns>.svc.<zone>`) and the pod records its endpoints give."""

    nodes: Nodes
    pods: tuple[Record, ...]


class Zone:
    """A snapshot compiled for lookups; never changes once built. `replace` derives the zone after an update
    of some Services, recompiling only those (each Service's names are a part of their own)."""

    def __init__(
        self,
        *,
        apex: str,
        ttl: int,
        serial: int,
        ns_address: str | None,
        parts: dict[str, _Part],
        pods: tuple[PodAddress, ...] = (),
    ) -> None:
        self.apex = apex
        self.pod_addresses = pods
        self.ttl = ttl
        self.serial = serial % 2**32 or 1
        self.ns_address = ns_address
        self._parts = parts
        nameserver = f"ns.dns.{apex}"
        soa = Record(apex, SOA, ttl, f"{nameserver} hostmaster.{apex} {self.serial} 7200 1800 86400 {ttl}")
        self._soa = (soa,)
        top = [
            soa,
            Record(apex, NS, ttl, nameserver),
            Record(f"dns-version.{apex}", TXT, ttl, f'"{SCHEMA_VERSION}"'),
        ]
        if ns_address and _ipv4(ns_address):
            top.append(Record(nameserver, A, ttl, ns_address))
        self._top = _nodes(top, top=apex)

    @classmethod
    def build(
        cls,
        snapshot: Snapshot,
        *,
        zone: str = DEFAULT_ZONE,
        ttl: int = DEFAULT_TTL,
        ns_address: str | None = None,
    ) -> Zone:
        apex = _absolute(zone)
        parts = {
            _service_name(s.key, apex): _compile(s, snapshot.endpoints.get(s.key, ()), apex, ttl)
            for s in snapshot.services
        }
        return cls(apex=apex, ttl=ttl, serial=snapshot.serial, ns_address=ns_address, parts=parts,
                   pods=snapshot.pods)

    def replace(
        self,
        changes: Mapping[ServiceKey, tuple[ServiceInfo | None, Iterable[Endpoint]]],
        *,
        serial: int,
    ) -> Zone:
        """This zone with the given Services recompiled (None: deleted)."""
        parts = dict(self._parts)
        for key, (service, endpoints) in changes.items():
            name = _service_name(key, self.apex)
            if service is None:
                parts.pop(name, None)
            else:
                parts[name] = _compile(service, tuple(endpoints), self.apex, self.ttl)
        return Zone(apex=self.apex, ttl=self.ttl, serial=serial, ns_address=self.ns_address, parts=parts,
                    pods=self.pod_addresses)

    def with_pods(self, pods: tuple[PodAddress, ...], *, serial: int) -> Zone:
        """This zone with another set of the agent's pod addresses (the Services' names are kept compiled)."""
        return Zone(apex=self.apex, ttl=self.ttl, serial=serial, ns_address=self.ns_address, parts=self._parts,
                    pods=pods)

    def lookup(self, qname: str, qtype: int) -> Answer:
        name = _absolute(qname)
        if name != self.apex and not name.endswith("." + self.apex):
            pointers = self._reverse.get(name)
            if pointers is None:
                return Answer(REFUSED)
            return Answer(NOERROR, pointers if qtype in (PTR, ANY) else ())
        node = self._find(name)
        if node is None:
            return Answer(NXDOMAIN, authority=self._soa)
        if CNAME in node and qtype not in (CNAME, ANY):
            return self._chase(node[CNAME], qtype)
        if qtype == ANY:
            answer = tuple(r for rtype in sorted(node) for r in node[rtype])
        else:
            answer = node.get(qtype, ())
        if not answer:
            return Answer(NOERROR, authority=self._soa)
        return Answer(NOERROR, answer, additional=self._additional(answer))

    def _chase(self, aliases: tuple[Record, ...], qtype: int) -> Answer:
        """The CNAME `aliases`, then the records of its target the zone holds: more CNAMEs or the asked type."""
        chain = list(aliases)
        seen = {aliases[0].name}
        for _ in range(MAX_CHAIN):
            target = chain[-1].data
            if target in seen:
                return Answer(NOERROR, tuple(chain))  # a loop
            if target != self.apex and not target.endswith("." + self.apex):
                return Answer(NOERROR, tuple(chain), outside=target)  # for the upstream (or the client's resolver)
            seen.add(target)
            node = self._find(target)
            if node is None:
                return Answer(NXDOMAIN, tuple(chain), authority=self._soa)
            if CNAME not in node:
                found = node.get(qtype, ())
                answer = (*chain, *found)
                return Answer(NOERROR, answer, () if found else self._soa, self._additional(found))
            chain.extend(node[CNAME])
        return Answer(NOERROR, tuple(chain))

    def _find(self, name: str) -> dict[int, tuple[Record, ...]] | None:
        """The node of an in-zone name; {} for an empty non-terminal; None when it does not exist."""
        top = self._top.get(name)
        if top is not None:
            return top
        labels = name[: -len(self.apex) - 1].split(".")
        if labels[-1] == "svc":
            if len(labels) == 1:
                return {} if self._parts else None
            if len(labels) == 2:
                return {} if labels[0] in self._namespaces else None
            part = self._parts.get(".".join(labels[-3:]) + "." + self.apex)
            return None if part is None else part.nodes.get(name)
        if labels[-1] == "pod":
            return self._pods.get(name)
        return None

    @functools.cached_property
    def _namespaces(self) -> frozenset[str]:
        return frozenset(name.split(".")[1] for name in self._parts)

    @functools.cached_property
    def _pods(self) -> Nodes:
        own = (_pod_record(namespace, address, self.apex, self.ttl) for namespace, address in self.pod_addresses
               if _ipv4(address))
        return _nodes((*(r for part in self._parts.values() for r in part.pods), *own), top=self.apex)

    @functools.cached_property
    def _reverse(self) -> dict[str, tuple[Record, ...]]:
        pointers: dict[str, set[Record]] = {}
        for part in self._parts.values():
            for node in part.nodes.values():
                for record in node.get(A, ()):
                    owner = ".".join(reversed(record.data.split("."))) + ".in-addr.arpa."
                    pointers.setdefault(owner, set()).add(Record(owner, PTR, self.ttl, record.name))
        for node in self._pods.values():
            for record in node.get(A, ()):
                owner = ".".join(reversed(record.data.split("."))) + ".in-addr.arpa."
                pointers.setdefault(owner, set()).add(Record(owner, PTR, self.ttl, record.name))
        return {owner: _reverse_choice(rs) for owner, rs in pointers.items()}

    def _additional(self, answer: Iterable[Record]) -> tuple[Record, ...]:
        """The A records of SRV targets and nameservers (glue), when this zone has them."""
        targets: list[str] = []
        for record in answer:
            if record.rtype == SRV:
                targets.append(record.data.rsplit(" ", 1)[1])
            elif record.rtype == NS:
                targets.append(record.data)
        extra: list[Record] = []
        for target in dict.fromkeys(targets):
            extra.extend((self._find(target) or {}).get(A, ()))
        return tuple(extra)


def _compile(service: ServiceInfo, endpoints: tuple[Endpoint, ...], apex: str, ttl: int) -> _Part:
    base = _service_name(service.key, apex)
    if service.external_name:  # an alias and nothing else: no SRV, no endpoints, no pod records
        return _Part(_nodes([Record(base, CNAME, ttl, _absolute(service.external_name))], top=base), ())
    named_ports = [_port_owner(service, port, apex) for port in service.ports if port.name]
    nodes = _nodes(_service_records(service, endpoints, apex, ttl), top=base, names=[base, *named_ports])
    pods = tuple(_pod_record(service.key.namespace, e.address, apex, ttl) for e in endpoints if _ipv4(e.address))
    return _Part(nodes, pods)


def _pod_record(namespace: str, address: str, apex: str, ttl: int) -> Record:
    return Record(f"{_dashed(address)}.{namespace}.pod.{apex}".lower(), A, ttl, address)


def _nodes(records: Iterable[Record], *, top: str, names: Iterable[str] = ()) -> Nodes:
    """Records grouped by name and type; `names` exist even without records, and so do the empty
    non-terminals between every name and `top` (as in any zone: they answer NODATA, not NXDOMAIN)."""
    grouped: dict[str, dict[int, set[Record]]] = {name: {} for name in names}
    for record in records:
        grouped.setdefault(record.name, {}).setdefault(record.rtype, set()).add(record)
    nodes: Nodes = {
        name: {rtype: tuple(sorted(rs, key=_record_order)) for rtype, rs in types.items()}
        for name, types in grouped.items()
    }
    for name in list(nodes):
        while name != top and name.endswith("." + top):
            name = name.partition(".")[2]
            nodes.setdefault(name, {})
    return nodes


def _record_order(record: Record) -> tuple[str, str]:
    return record.name, record.data


def _service_name(key: ServiceKey, apex: str) -> str:
    return f"{key.name}.{key.namespace}.svc.{apex}".lower()


def _port_owner(service: ServiceInfo, port: PortInfo, apex: str) -> str:
    return f"_{port.name}._{port.protocol}.{_service_name(service.key, apex)}".lower()


def _service_records(
    service: ServiceInfo, endpoints: Iterable[Endpoint], apex: str, ttl: int
) -> list[Record]:
    base = _service_name(service.key, apex)
    ready = [e for e in endpoints if e.ready and _ipv4(e.address)]
    records: list[Record] = []
    if service.headless:
        records.extend(Record(base, A, ttl, e.address) for e in ready)
    elif service.address and _ipv4(service.address):
        records.append(Record(base, A, ttl, service.address))
    targets = {e.name: f"{_endpoint_label(e)}.{base}" for e in ready}
    records.extend(Record(targets[e.name], A, ttl, e.address) for e in ready)
    all_ports: list[tuple[int, str]] = []
    for port in service.ports:
        serving = [(e.ports[port.name], targets[e.name]) for e in ready if port.name in e.ports]
        all_ports.extend(serving)
        if port.name:
            records.extend(_srv(_port_owner(service, port, apex), serving, ttl))
    records.extend(_srv(base, all_ports, ttl))
    return records


def _reverse_choice(records: set[Record]) -> tuple[Record, ...]:
    """One PTR per address: the most specific name (an endpoint's own name before its headless Service's)."""
    return (max(records, key=lambda r: (r.data.count("."), r.data)),)


def _srv(owner: str, serving: list[tuple[int, str]], ttl: int) -> list[Record]:
    unique = sorted(set(serving))
    weight = max(1, 100 // len(unique)) if unique else 0
    return [Record(owner, SRV, ttl, f"0 {weight} {port} {target}") for port, target in unique]


def _endpoint_label(endpoint: Endpoint) -> str:
    return (endpoint.hostname or _dashed(endpoint.address)).lower()


def _dashed(address: str) -> str:
    return address.replace(".", "-")


def _absolute(name: str) -> str:
    name = name.lower()
    return name if name.endswith(".") else name + "."


def _ipv4(address: str) -> bool:
    parts = address.split(".")
    return len(parts) == 4 and all(
        p.isdigit() and p.isascii() and len(p) <= 3 and int(p) <= 255 for p in parts
    )

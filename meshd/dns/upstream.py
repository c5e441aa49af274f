"""The addresses of ExternalName targets outside the zone, asked of the host's resolvers.

`my-db.default.svc.cluster.local CNAME db.example.com.` alone leaves a pod without an address: a stub resolver
(glibc, musl) does not chase a CNAME across servers, and the agent comes first in a pod's resolv.conf. So, as
CoreDNS's kubernetes plugin does with its upstream, the agent appends the target's records to the answer. It
still recurses for nobody: only the targets of ExternalName Services (names a user wrote into the cluster) are
ever asked upstream, and any other name outside the zone is REFUSED as before.

Answers are cached for their TTL (at most `max_ttl`); a failure or an empty answer for `negative_ttl`. Lookups of
one name are shared. The servers are the host's (`/etc/resolv.conf`, loopback ones included: the agent runs on the
host) unless given."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable, Sequence

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from meshd.dns.zone import A, CNAME, Record

log = logging.getLogger(__name__)

CHASED = (A,)  # the types chased upstream (meshd is IPv4: AAAA stays NODATA)


def parse_servers(spec: str) -> list[tuple[str, int]] | None:
    """`--dns-upstream`: "" -> None (the host's resolv.conf); "off" -> []; "ADDR[:PORT],..." -> the list."""
    spec = spec.strip()
    if not spec:
        return None
    if spec == "off":
        return []
    servers = []
    for item in spec.split(","):
        host, sep, port = item.strip().rpartition(":")
        host, port = (host, port) if sep else (item.strip(), "53")
        ipaddress.ip_address(host)  # (ValueError: not an address)
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{port!r} is not a port")
        servers.append((host, int(port)))
    return servers


class Upstream:
    def __init__(
        self,
        servers: Sequence[tuple[str, int]] | None = None,
        *,
        timeout: float = 2.0,
        max_ttl: int = 300,
        negative_ttl: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resolver = dns.asyncresolver.Resolver(configure=servers is None)
        if servers is not None:
            self._resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in servers]
        self._resolver.lifetime = timeout
        self.max_ttl = max_ttl
        self.negative_ttl = negative_ttl
        self.clock = clock
        self._cache: dict[tuple[str, int], tuple[float, tuple[Record, ...]]] = {}
        self._pending: dict[tuple[str, int], asyncio.Task[None]] = {}

    def records(self, name: str, qtype: int) -> tuple[Record, ...] | None:
        """The target's records while fresh (empty: it has none, or its lookup failed); None: not known."""
        entry = self._cache.get((name, qtype))
        if entry is None or entry[0] <= self.clock():
            return None
        return entry[1]

    async def resolve(self, name: str, qtype: int) -> None:
        """Looks `name` up (once, however many ask at the same time) and caches what it finds; never raises."""
        key = (name, qtype)
        task = self._pending.get(key)
        if task is None:
            task = self._pending[key] = asyncio.ensure_future(self._lookup(name, qtype))
            task.add_done_callback(lambda _: self._pending.pop(key, None))
        await asyncio.shield(task)

    async def _lookup(self, name: str, qtype: int) -> None:
        try:
            rdtype = dns.rdatatype.RdataType.make(qtype)
            answer = await self._resolver.resolve(name, rdtype, search=False, raise_on_no_answer=False)
            records = tuple(
                Record(rrset.name.to_text().lower(), rrset.rdtype, min(rrset.ttl, self.max_ttl), rdata.to_text())
                for rrset in answer.response.answer
                if rrset.rdtype in (CNAME, qtype)
                for rdata in rrset
            )
        except dns.exception.DNSException as error:
            log.debug("DNS: the ExternalName target %s (type %d): %s", name, qtype, error)
            records = ()
        ttl = min((r.ttl for r in records), default=self.negative_ttl) if records else self.negative_ttl
        if len(self._cache) >= 10_000:
            self._cache.clear()
        self._cache[(name, qtype)] = (self.clock() + max(ttl, 1), records)

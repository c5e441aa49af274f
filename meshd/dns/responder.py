"""Turns DNS packets into answers, transport-neutral: encoded answers are cached, any registry update drops them.

Two caches, both emptied by `invalidate()` (the registry listener calls it synchronously, so no answer computed
before a change is served after it):
- `exact`: UDP query bytes after the ID -> answer bytes after the ID. A repeated query costs a dict lookup and
  one concatenation (the ID patched in), which is how the UDP hot path keeps up with dnsmasq.
- `_answers`: (qname lowercased, qtype, qclass, RD/CD, EDNS, DO, size limit) -> rendered answer; a hit splices the
  query's ID and question bytes (so its case) into it. A miss goes through dnspython and the zone lookup.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import dns.message
import dns.opcode
import dns.rcode

from meshd.dns.codec import (
    CLASS_ANY,
    DEFAULT_MAX_UDP,
    HEADER,
    IN,
    MAX_TCP,
    Question,
    error_reply,
    parse_query,
    render,
    status_reply,
    udp_limit,
)
from meshd.dns.metrics import TCP, UDP, DnsStats, stat_index
from meshd.dns.upstream import CHASED, Upstream
from meshd.dns.zone import DEFAULT_TTL, DEFAULT_ZONE, Answer, EndpointSource, Snapshot, Zone, pod_addresses
from meshd.model.endpoints import Reset, ServiceKey, Update

log = logging.getLogger(__name__)

FORMERR, SERVFAIL, NOTIMP, REFUSED, BADVERS = 1, 2, 4, 5, 16
_TRANSFERS = {251, 252, 253, 254}  # IXFR AXFR MAILB MAILA: no zone transfers
_OPT = 41


Later = Callable[[bytes], None]  # sends a reply after the query's answer (an ExternalName target looked up)


class _Wait(Exception):
    """The answer needs an ExternalName target's records, not yet known: look them up, then answer."""

    def __init__(self, name: str, qtype: int) -> None:
        self.name, self.qtype = name, qtype


@dataclass(frozen=True, slots=True)
class _Decision:
    wire: bytes | None  # None: drop the packet
    qtype: int = 0
    rcode: int = 0
    cacheable: bool = False


class Responder:
    """Answers raw DNS messages for `zone` from `source` (a Registry); never raises."""

    def __init__(
        self,
        source: EndpointSource,
        *,
        zone: str = DEFAULT_ZONE,
        ttl: int = DEFAULT_TTL,
        ns_address: str | None = None,
        max_udp: int = DEFAULT_MAX_UDP,
        cache_size: int = 10_000,
        upstream: Upstream | None = None,
    ) -> None:
        self.source = source
        self.upstream = upstream
        self._waiting: set[asyncio.Task[None]] = set()
        self.zone_name = zone
        self.ttl = ttl
        self.ns_address = ns_address
        self.max_udp = max_udp
        self.cache_size = cache_size
        self._zone: Zone | None = None
        self._dirty: set[ServiceKey] = set()
        self._pods_dirty = False
        self._generation = 0
        self.exact: dict[bytes, tuple[bytes, int]] = {}  # cleared, never replaced (the UDP loop holds it)
        self._answers: dict[tuple[bytes, int, int, int, bool, bool, int], tuple[bytes, int, bool]] = {}
        self.stats = DnsStats(self.cache_entries)

    def cache_entries(self) -> int:
        return len(self.exact) + len(self._answers)

    def invalidate(self, update: Update | None = None) -> None:
        """Forgets every cached answer at once (the registry calls this with each update); the zone is
        recompiled at the next query: only the updated Service when the update says which."""
        self.exact.clear()
        self._answers.clear()
        self._generation += 1
        if update is None:
            self._zone = None
        elif self._zone is not None:
            self._dirty.add(update.service.key if isinstance(update, Reset) else update.service)

    def invalidate_pods(self) -> None:
        """The agent's pods' addresses changed (their A and PTR records): every cached answer goes."""
        self.exact.clear()
        self._answers.clear()
        self._generation += 1
        self._pods_dirty = True

    @property
    def zone(self) -> Zone:
        serial = getattr(self.source, "index", None)
        serial = serial if isinstance(serial, int) else self._generation
        if self._zone is None:
            snapshot = Snapshot.of(self.source, serial=serial)
            self._zone = Zone.build(snapshot, zone=self.zone_name, ttl=self.ttl, ns_address=self.ns_address)
            self._dirty.clear()
        elif self._dirty:
            source = self.source
            changes = {key: (source.service(key), source.endpoints(key)) for key in self._dirty}
            self._zone = self._zone.replace(changes, serial=serial)
            self._dirty.clear()
        if self._pods_dirty:
            self._pods_dirty = False
            self._zone = self._zone.with_pods(pod_addresses(self.source), serial=serial)
        return self._zone

    def answer_udp(self, data: bytes, later: Later | None = None) -> bytes | None:
        """The UDP response to `data`, or None to drop it (or, with `later`, when `later` will send it)."""
        hit = self.exact.get(data[2:])
        if hit is not None:
            self.stats.queries[hit[1]] += 1
            return data[:2] + hit[0]
        return self._answer(data, UDP, later)

    def answer_tcp(self, data: bytes, later: Later | None = None) -> bytes | None:
        """The TCP response to one framed message `data` (never truncated), or None to drop it (or, with
        `later`, when `later` will send it)."""
        return self._answer(data, TCP, later)

    def _answer(self, data: bytes, transport: int, later: Later | None = None) -> bytes | None:
        try:
            question = parse_query(data)
            if question is None:
                return self._count(self._decide(data, transport, later is not None), transport)
            return self._cached(data, question, transport, later is not None)
        except _Wait as wait:
            assert later is not None and self.upstream is not None
            task = asyncio.ensure_future(self._answer_later(data, transport, wait, self.upstream, later))
            self._waiting.add(task)
            task.add_done_callback(self._waiting.discard)
            return None
        except Exception:  # a bug must cost one answer, never the server
            log.exception("DNS: failed to answer a %d-byte query", len(data))
            reply = error_reply(data, SERVFAIL)
            self.stats.dropped[transport] += reply is None
            return reply

    async def _answer_later(self, data: bytes, transport: int, wait: _Wait, upstream: Upstream, later: Later) -> None:
        await upstream.resolve(wait.name, wait.qtype)
        reply = self._answer(data, transport)  # the records are known now (or known to be missing)
        if reply is not None:
            later(reply)

    def close(self) -> None:
        """Cancels the answers waiting for an upstream lookup."""
        for task in list(self._waiting):
            task.cancel()

    def _cached(self, data: bytes, q: Question, transport: int, may_wait: bool = False) -> bytes | None:
        limit = MAX_TCP if transport == TCP else udp_limit(q.payload, q.edns, max_udp=self.max_udp)
        key = (q.qname, q.qtype, q.qclass, q.flags, q.edns, q.do, limit)
        entry = self._answers.get(key)
        if entry is None:
            decision = self._decide(data, transport, may_wait)
            if decision.wire is None:
                self.stats.dropped[transport] += 1
                return None
            entry = (
                decision.wire,
                stat_index(decision.qtype, decision.rcode, transport),
                bool(decision.wire[2] & 2),
            )
            if decision.cacheable and len(decision.wire) >= q.end:
                if len(self._answers) >= self.cache_size:
                    self._answers.clear()
                self._answers[key] = entry
            else:
                self.stats.queries[entry[1]] += 1
                return decision.wire
        wire, index, truncated = entry
        reply = data[:2] + wire[2:HEADER] + data[HEADER : q.end] + wire[q.end :]
        self.stats.queries[index] += 1
        if truncated:
            self.stats.truncated += 1
        elif transport == UDP:
            if len(self.exact) >= self.cache_size:
                self.exact.clear()
            self.exact[data[2:]] = (reply[2:], index)
        return reply

    def _count(self, decision: _Decision, transport: int) -> bytes | None:
        if decision.wire is None:
            self.stats.dropped[transport] += 1
        else:
            self.stats.queries[stat_index(decision.qtype, decision.rcode, transport)] += 1
            if transport == UDP and decision.wire[2] & 2:
                self.stats.truncated += 1
        return decision.wire

    def _decide(self, data: bytes, transport: int, may_wait: bool = False) -> _Decision:
        """The general path: dnspython parses, the zone decides, dnspython renders."""
        try:
            query = dns.message.from_wire(data)
        except dns.message.ShortHeader:
            return _Decision(None)
        except Exception:  # noqa: BLE001 - dnspython's many parse errors all mean FORMERR
            return _Decision(error_reply(data, FORMERR), rcode=FORMERR)
        if query.flags & 0x8000:
            return _Decision(None)  # a response: never answer one (no reflection loops)
        if query.opcode() != dns.opcode.QUERY:
            return _Decision(status_reply(query, NOTIMP, max_udp=self.max_udp), rcode=NOTIMP)
        if len(query.question) != 1:
            return _Decision(status_reply(query, FORMERR, max_udp=self.max_udp), rcode=FORMERR)
        qtype, qclass = query.question[0].rdtype, query.question[0].rdclass
        if query.edns > 0:
            return _Decision(status_reply(query, BADVERS, max_udp=self.max_udp), qtype, BADVERS)
        if qtype == _OPT:
            return _Decision(status_reply(query, FORMERR, max_udp=self.max_udp), qtype, FORMERR)
        if qclass not in (IN, CLASS_ANY) or qtype in _TRANSFERS:
            return _Decision(status_reply(query, REFUSED, max_udp=self.max_udp), qtype, REFUSED, True)
        answer = self.zone.lookup(query.question[0].name.to_text(), qtype)
        cacheable = True
        if answer.outside and self.upstream is not None and qtype in CHASED:
            found = self.upstream.records(answer.outside, qtype)
            if found is None:
                if may_wait:
                    raise _Wait(answer.outside, qtype)
                found = ()
            answer = Answer(answer.rcode, answer.answer + found, answer.authority, answer.additional)
            cacheable = False  # (upstream records live by their TTL, not by the registry's updates)
        if transport == TCP:
            limit = MAX_TCP
        else:
            limit = udp_limit(query.payload, query.edns >= 0, max_udp=self.max_udp)
        wire = render(answer, query, limit=limit, max_udp=self.max_udp)
        return _Decision(wire, qtype, answer.rcode, cacheable)

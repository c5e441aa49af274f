"""meshd.dns.upstream and the responder's use of it: an ExternalName target outside the zone gets its records
from the host's resolvers (cached by TTL; the answer waits for a lookup only when its sender can send later)."""

from __future__ import annotations

import asyncio

import dns.message
import dns.rdatatype
import pytest

import meshd.metrics  # noqa: F401 - imported before the loop runs (its process collector reads /proc)
from meshd.dns.responder import Responder
from meshd.dns.upstream import Upstream, parse_servers
from meshd.dns.zone import CNAME, A, Record, Snapshot, lookup
from meshd.model.endpoints import ServiceInfo, ServiceKey

DB = ServiceInfo(ServiceKey("default", "db"), None, (), external_name="db.example.com")
NAME = "db.default.svc.cluster.local."


@pytest.mark.parametrize(("spec", "servers"), [
    ("", None), ("off", []), ("10.0.0.2", [("10.0.0.2", 53)]),
    ("127.0.0.1:5353, 10.0.0.2", [("127.0.0.1", 5353), ("10.0.0.2", 53)]),
])  # fmt: skip
def test_dns_upstream_flag(spec: str, servers: list[tuple[str, int]] | None) -> None:
    assert parse_servers(spec) == servers


@pytest.mark.parametrize("spec", ["dns.google", "10.0.0.2:x", "10.0.0.2:70000"])
def test_a_bad_dns_upstream_flag_is_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_servers(spec)


def test_the_zone_names_a_target_outside_it() -> None:
    answer = lookup(Snapshot((DB,), {DB.key: ()}), NAME, A)
    assert answer.outside == "db.example.com." and [r.rtype for r in answer.answer] == [CNAME]


class Source:
    def services(self) -> list[ServiceInfo]:
        return [DB]

    def service(self, key: ServiceKey) -> ServiceInfo | None:
        return DB if key == DB.key else None

    def endpoints(self, key: ServiceKey) -> tuple:
        return ()


class KnownUpstream(Upstream):
    """Answers from a table (the lookup itself is tested with dnsmasq: test_kubectl_externalname)."""

    def __init__(self, table: dict[str, tuple[Record, ...]]) -> None:
        super().__init__([])
        self.table, self.asked = table, []

    async def _lookup(self, name: str, qtype: int) -> None:
        self.asked.append(name)
        self._cache[(name, qtype)] = (self.clock() + 5, self.table.get(name, ()))


def records(reply: bytes) -> list[str]:
    return [f"{r.name} {dns.rdatatype.to_text(r.rdtype)} {rd}" for r in dns.message.from_wire(reply).answer for rd in r]


async def test_an_answer_waits_for_the_targets_records_then_they_are_cached() -> None:
    upstream = KnownUpstream({"db.example.com.": (Record("db.example.com.", A, 30, "192.0.2.7"),)})
    responder = Responder(Source(), upstream=upstream)
    query = dns.message.make_query(NAME, "A").to_wire()
    sent: list[bytes] = []
    assert responder.answer_udp(query, sent.append) is None  # sent later
    for _ in range(10):
        await asyncio.sleep(0)
    (reply,) = sent
    assert records(reply) == [f"{NAME} CNAME db.example.com.", "db.example.com. A 192.0.2.7"]
    again = responder.answer_udp(query, sent.append)  # known now: answered at once, the lookup not repeated
    assert again is not None and records(again) == records(reply) and upstream.asked == ["db.example.com."]
    assert not responder.exact  # (never in the registry-invalidated caches: upstream records live by their TTL)


async def test_without_a_later_sender_or_for_other_types_the_cname_alone() -> None:
    upstream = KnownUpstream({})
    responder = Responder(Source(), upstream=upstream)
    reply = responder.answer_udp(dns.message.make_query(NAME, "A").to_wire())
    assert reply is not None and records(reply) == [f"{NAME} CNAME db.example.com."]
    reply = responder.answer_udp(dns.message.make_query(NAME, "TXT").to_wire(), lambda _: None)
    assert reply is not None and records(reply) == [f"{NAME} CNAME db.example.com."] and upstream.asked == []

"""The wire side of the DNS server: cache hits patch the ID and echo the question, truncation, EDNS, errors."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from meshd.dns import responder as responder_module
from meshd.dns.codec import parse_query
from meshd.dns.metrics import RCODES, TCP, UDP, stat_index
from meshd.dns.responder import Responder
from meshd.model.endpoints import PortInfo, ServiceInfo, ServiceKey
from meshd.registry.endpoints import PodRecord
from meshd.registry.registry import Registry

WEB = "web.default.svc.cluster.local."
SRV = f"_http._tcp.{WEB}"


def make_registry(pods: int = 3) -> Registry:
    registry = Registry()
    registry.upsert_service(
        ServiceInfo(ServiceKey("default", "web"), "127.214.0.5", (PortInfo("http", 80, "http"),)),
        {"app": "web"},
    )
    for i in range(pods):
        registry.upsert_pod(
            PodRecord("default", f"web-{i}", {"app": "web"}, f"127.213.0.{i + 2}", {"http": 8080}, ready=True)
        )
    return registry


@pytest.fixture
def registry() -> Registry:
    return make_registry()


@pytest.fixture
def responder(registry: Registry) -> Responder:
    r = Responder(registry)
    registry.listen(r.invalidate)
    return r


def query(name: str = WEB, rdtype: str = "A", *, qid: int = 1234, **kw: object) -> bytes:
    message = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    message.id = qid
    return message.to_wire()


def parse(wire: bytes | None) -> dns.message.Message:
    assert wire is not None
    return dns.message.from_wire(wire)


def test_cache_hit_patches_the_id_and_returns_the_same_answer(responder: Responder) -> None:
    first = responder.answer_udp(query(qid=1))
    second = responder.answer_udp(query(qid=0xBEEF))
    assert first is not None and second is not None
    assert second[:2] == b"\xbe\xef" and second[2:] == first[2:]
    assert parse(second).answer[0].to_text() == f"{WEB} 5 IN A 127.214.0.5"
    assert responder.cache_entries() == 2  # one normalised, one exact


def test_question_case_is_echoed_from_each_query(
    responder: Responder, monkeypatch: pytest.MonkeyPatch
) -> None:
    responder.answer_udp(query("web.default.svc.cluster.local."))
    renders: list[object] = []

    def counting_render(*args: object, **kwargs: object) -> bytes:
        renders.append(args)
        return b""

    monkeypatch.setattr(responder_module, "render", counting_render)
    mixed = parse(responder.answer_udp(query("WeB.DeFaUlT.svc.CLUSTER.local.")))
    assert renders == []  # served from the normalised cache, not re-rendered
    assert mixed.question[0].name.to_text() == "WeB.DeFaUlT.svc.CLUSTER.local."
    assert mixed.answer[0].name.to_text().lower() == WEB
    assert mixed.answer[0][0].to_text() == "127.214.0.5"


def test_answers_change_on_every_registry_update(registry: Registry, responder: Responder) -> None:
    before = parse(responder.answer_udp(query(SRV, "SRV")))
    assert len(before.answer[0]) == 3
    registry.upsert_pod(
        PodRecord("default", "web-0", {"app": "web"}, "127.213.0.2", {"http": 8080}, ready=False)
    )
    after = parse(responder.answer_udp(query(SRV, "SRV")))
    assert len(after.answer[0]) == 2
    assert "127.213.0.2" not in {rd.to_text() for rrset in after.additional for rd in rrset}


def test_udp_without_edns_truncates_at_512_and_tcp_answers_in_full() -> None:
    r = Responder(make_registry(40))
    udp = r.answer_udp(query(SRV, "SRV"))
    assert udp is not None and len(udp) <= 512
    assert parse(udp).flags & dns.flags.TC
    tcp = parse(r.answer_tcp(query(SRV, "SRV")))
    assert not tcp.flags & dns.flags.TC
    assert len(tcp.answer[0]) == 40 and len(tcp.additional) == 40
    assert r.stats.truncated == 1


@pytest.mark.parametrize("payload, truncated", [(512, True), (1232, True), (4096, True), (65535, True)])
def test_edns_payload_is_honoured_up_to_the_server_maximum(payload: int, truncated: bool) -> None:
    r = Responder(make_registry(40), max_udp=1232)
    wire = r.answer_udp(query(SRV, "SRV", use_edns=0, payload=payload))
    assert wire is not None and len(wire) <= max(512, min(payload, 1232))
    assert bool(parse(wire).flags & dns.flags.TC) is truncated


def test_edns_large_payload_fits_a_mid_sized_answer() -> None:
    r = Responder(make_registry(12))
    assert parse(r.answer_udp(query(SRV, "SRV"))).flags & dns.flags.TC
    full = parse(r.answer_udp(query(SRV, "SRV", use_edns=0, payload=1232)))
    assert not full.flags & dns.flags.TC and len(full.answer[0]) == 12


def test_edns_is_echoed_with_do_and_bad_versions_get_badvers(responder: Responder) -> None:
    plain = parse(responder.answer_udp(query()))
    assert plain.edns == -1
    edns = parse(responder.answer_udp(query(use_edns=0, payload=4096, want_dnssec=True)))
    assert edns.edns == 0 and edns.payload == 1232 and edns.ednsflags & dns.flags.DO
    bad = parse(responder.answer_udp(query(use_edns=1)))
    assert bad.rcode() == dns.rcode.BADVERS


def test_flags_authoritative_and_rd_cd_copied(responder: Responder) -> None:
    message = dns.message.make_query(WEB, "A")
    message.flags |= dns.flags.CD
    reply = parse(responder.answer_udp(message.to_wire()))
    assert reply.flags & dns.flags.AA and reply.flags & dns.flags.RD and reply.flags & dns.flags.CD
    assert not reply.flags & dns.flags.RA
    refused = parse(responder.answer_udp(query("example.com.")))
    assert refused.rcode() == dns.rcode.REFUSED and not refused.flags & dns.flags.AA


def test_nxdomain_and_nodata_carry_the_soa(responder: Responder) -> None:
    nx = parse(responder.answer_udp(query("nope.default.svc.cluster.local.")))
    assert nx.rcode() == dns.rcode.NXDOMAIN and nx.authority[0].rdtype == dns.rdatatype.SOA
    nodata = parse(responder.answer_udp(query(WEB, "AAAA")))
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA


@pytest.mark.parametrize(
    "rdclass, rdtype, rcode",
    [
        ("CH", "TXT", dns.rcode.REFUSED),
        ("IN", "AXFR", dns.rcode.REFUSED),
        ("IN", "IXFR", dns.rcode.REFUSED),
        ("IN", "TYPE65000", dns.rcode.NOERROR),
        ("ANY", "A", dns.rcode.NOERROR),
    ],
)
def test_classes_and_unusual_types(responder: Responder, rdclass: str, rdtype: str, rcode: int) -> None:
    wire = dns.message.make_query(WEB, rdtype, rdclass).to_wire()
    assert parse(responder.answer_udp(wire)).rcode() == rcode


def test_malformed_packets(responder: Responder) -> None:
    good = query(qid=0x1111)
    assert responder.answer_udp(b"") is None
    assert responder.answer_udp(good[:11]) is None  # no header: dropped
    for broken in (good[:-2], good[:12] + b"\x05ab", good + b"junk"):
        reply = responder.answer_udp(broken)
        assert reply is not None and reply[:2] == b"\x11\x11" and reply[3] & 0xF == dns.rcode.FORMERR
    # a response is never answered (no reflection loops)
    response = bytearray(good)
    response[2] |= 0x80
    assert responder.answer_udp(bytes(response)) is None
    # a compression loop in the question
    loop = good[:12] + b"\xc0\x0c" + b"\x00\x01\x00\x01"
    assert responder.answer_udp(loop)[3] & 0xF == dns.rcode.FORMERR  # type: ignore[index]
    # two questions
    two = bytearray(good[:12] + good[12:] + good[12:])
    two[5] = 2
    assert parse(responder.answer_udp(bytes(two))).rcode() == dns.rcode.FORMERR
    assert responder.stats.dropped[UDP] == 3


def test_other_opcodes_are_not_implemented(responder: Responder) -> None:
    notify = dns.message.make_query(WEB, "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    reply = parse(responder.answer_udp(notify.to_wire()))
    assert reply.rcode() == dns.rcode.NOTIMP and reply.opcode() == dns.opcode.NOTIFY


def test_fast_parser_agrees_with_dnspython_on_plain_queries() -> None:
    wire = query("A.b.C.", "SRV", use_edns=0, payload=1400, want_dnssec=True)
    q = parse_query(wire)
    assert q is not None
    assert (q.qname, q.qtype, q.qclass, q.edns, q.payload, q.do) == (
        b"\x01a\x01b\x01c\x00",
        33,
        1,
        True,
        1400,
        True,
    )
    assert parse_query(query("a.b.c.")).edns is False  # type: ignore[union-attr]
    assert parse_query(wire[:-1]) is None


def test_queries_are_counted_by_type_rcode_and_transport(responder: Responder) -> None:
    for _ in range(3):
        responder.answer_udp(query())
    responder.answer_tcp(query("nope.cluster.local."))
    assert responder.stats.queries[stat_index(1, 0, UDP)] == 3
    assert responder.stats.queries[stat_index(1, 3, TCP)] == 1
    assert responder.stats.queries[stat_index(99, 0, UDP)] == 0
    assert stat_index(99, 99, TCP) == len(responder.stats.queries) - 1
    assert RCODES[-1] == "OTHER"

"""The DNS server on real sockets, asked by real clients: `dig` (BIND's) and dnspython."""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import struct
from collections.abc import AsyncIterator

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from prometheus_client import generate_latest

from meshd.dns.server import DnsServer
from meshd.metrics import REGISTRY
from meshd.model.endpoints import PortInfo, ServiceInfo, ServiceKey
from meshd.registry.endpoints import PodRecord
from meshd.registry.registry import Registry

WEB = "web.default.svc.cluster.local"
SRV = f"_http._tcp.{WEB}"
needs_dig = pytest.mark.skipif(shutil.which("dig") is None, reason="dig (dnsutils) is not installed")


def web_pod(i: int, *, ready: bool = True) -> PodRecord:
    return PodRecord("default", f"web-{i}", {"app": "web"}, f"127.213.0.{i + 2}", {"http": 8080}, ready=ready)


@pytest.fixture
def registry() -> Registry:
    registry = Registry()
    registry.upsert_service(
        ServiceInfo(ServiceKey("default", "web"), "127.214.0.5", (PortInfo("http", 80, "http"),)),
        {"app": "web"},
    )
    registry.upsert_service(
        ServiceInfo(ServiceKey("default", "db"), None, (PortInfo("pg", 5432, 5432),)), {"app": "db"}
    )
    for i in range(3):
        registry.upsert_pod(web_pod(i))
    registry.upsert_pod(
        PodRecord(
            "default", "db-0", {"app": "db"}, "127.213.1.2", {}, ready=True, hostname="db-0", subdomain="db"
        )
    )
    return registry


@pytest.fixture(params=["reader", "protocol"])
async def server(registry: Registry, request: pytest.FixtureRequest) -> AsyncIterator[DnsServer]:
    server = DnsServer(
        registry, listen=[("127.0.0.1", 0)], tcp_idle_timeout=0.5, max_tcp_connections=4, udp=request.param
    )
    await server.start()
    yield server
    await server.close()


def port_of(server: DnsServer) -> int:
    return server.addresses[0][1]


async def dig(server: DnsServer, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "dig",
        "@127.0.0.1",
        "-p",
        str(port_of(server)),
        "+norec",
        "+time=2",
        "+tries=1",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 20)
    return out.decode()


def section(output: str, name: str) -> list[list[str]]:
    """The records of one section of dig's default output, split into fields."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(f";; {name} SECTION:")), None)
    if start is None:
        return []
    records = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        records.append(line.split())
    return records


@needs_dig
async def test_dig_service_a_record(server: DnsServer) -> None:
    out = await dig(server, WEB)
    assert "status: NOERROR" in out and " aa" in out
    assert section(out, "ANSWER") == [[f"{WEB}.", "5", "IN", "A", "127.214.0.5"]]


@needs_dig
async def test_dig_headless_and_srv_with_additional_records(server: DnsServer) -> None:
    out = await dig(server, "db.default.svc.cluster.local")
    assert [r[-1] for r in section(out, "ANSWER")] == ["127.213.1.2"]
    out = await dig(server, SRV, "SRV")
    answers = section(out, "ANSWER")
    assert sorted(r[-1] for r in answers) == [f"127-213-0-{i}.{WEB}." for i in (2, 3, 4)]
    assert {r[-2] for r in answers} == {"8080"}
    additional = {r[0]: r[-1] for r in section(out, "ADDITIONAL")}
    assert additional == {f"127-213-0-{i}.{WEB}.": f"127.213.0.{i}" for i in (2, 3, 4)}
    target = await dig(server, f"127-213-0-3.{WEB}", "+short")
    assert target.split() == ["127.213.0.3"]


@needs_dig
async def test_dig_nxdomain_nodata_and_refused(server: DnsServer) -> None:
    out = await dig(server, "nope.default.svc.cluster.local")
    assert "status: NXDOMAIN" in out and section(out, "AUTHORITY")[0][3] == "SOA"
    out = await dig(server, WEB, "AAAA")
    assert "status: NOERROR" in out and "ANSWER: 0" in out and section(out, "AUTHORITY")[0][3] == "SOA"
    out = await dig(server, "example.com")
    assert "status: REFUSED" in out and "ANSWER: 0" in out


@needs_dig
async def test_dig_over_tcp(server: DnsServer) -> None:
    out = await dig(server, "+tcp", SRV, "SRV")
    assert "status: NOERROR" in out and len(section(out, "ANSWER")) == 3


@needs_dig
async def test_dig_truncation_then_tcp_retry(server: DnsServer, registry: Registry) -> None:
    for i in range(3, 40):
        registry.upsert_pod(web_pod(i))
    truncated = await dig(server, "+bufsize=512", "+ignore", SRV, "SRV")
    assert "status: NOERROR" in truncated and " tc" in truncated.split("flags:")[1].split(";")[0]
    retried = await dig(server, "+bufsize=512", SRV, "SRV")
    assert "Truncated, retrying in TCP mode" in retried
    assert len(section(retried, "ANSWER")) == 40 and len(section(retried, "ADDITIONAL")) == 40


@needs_dig
async def test_answers_change_the_moment_a_pod_becomes_unready(server: DnsServer, registry: Registry) -> None:
    assert len(section(await dig(server, SRV, "SRV"), "ANSWER")) == 3  # now cached
    registry.upsert_pod(web_pod(0, ready=False))
    out = await dig(server, SRV, "SRV")
    assert sorted(r[-1] for r in section(out, "ANSWER")) == [f"127-213-0-{i}.{WEB}." for i in (3, 4)]
    gone = await dig(server, f"127-213-0-2.{WEB}")
    assert "status: NXDOMAIN" in gone
    registry.delete_pod("default", "web-1")
    registry.upsert_pod(web_pod(2, ready=False))
    assert "status: NOERROR" in (out := await dig(server, SRV, "SRV")) and "ANSWER: 0" in out
    registry.upsert_pod(web_pod(0))
    assert len(section(await dig(server, SRV, "SRV"), "ANSWER")) == 1
    registry.delete_service(ServiceKey("default", "web"))
    assert "status: NXDOMAIN" in await dig(server, WEB)


@needs_dig
async def test_case_of_the_question_is_preserved(server: DnsServer) -> None:
    await dig(server, WEB)
    out = await dig(server, "WeB.DEFAULT.svc.Cluster.Local")
    assert ";WeB.DEFAULT.svc.Cluster.Local.\tIN\tA" in out
    assert section(out, "ANSWER")[0][-1] == "127.214.0.5"


async def test_dnspython_udp_and_tcp(server: DnsServer) -> None:
    port = port_of(server)
    udp = await dns.asyncquery.udp(dns.message.make_query(SRV, "SRV"), "127.0.0.1", port=port, timeout=5)
    tcp = await dns.asyncquery.tcp(dns.message.make_query(SRV, "SRV"), "127.0.0.1", port=port, timeout=5)
    for reply in (udp, tcp):
        assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
        assert len(reply.answer[0]) == 3 and len(reply.additional) == 3
    refused = await dns.asyncquery.udp(
        dns.message.make_query("example.org", "A"), "127.0.0.1", port=port, timeout=5
    )
    assert refused.rcode() == dns.rcode.REFUSED


async def tcp_exchange(port: int, payload: bytes, *, replies: int) -> list[dns.message.Message]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    messages = []
    for _ in range(replies):
        (length,) = struct.unpack(">H", await asyncio.wait_for(reader.readexactly(2), 5))
        messages.append(dns.message.from_wire(await reader.readexactly(length)))
    writer.close()
    return messages


def framed(wire: bytes) -> bytes:
    return struct.pack(">H", len(wire)) + wire


async def test_tcp_pipelines_several_queries_on_one_connection(server: DnsServer) -> None:
    queries = [
        dns.message.make_query(name, "A") for name in (WEB, "db.default.svc.cluster.local", "x.cluster.local")
    ]
    replies = await tcp_exchange(port_of(server), b"".join(framed(q.to_wire()) for q in queries), replies=3)
    assert [r.id for r in replies] == [q.id for q in queries]
    assert [r.rcode() for r in replies] == [dns.rcode.NOERROR, dns.rcode.NOERROR, dns.rcode.NXDOMAIN]


async def test_tcp_garbage_gets_formerr_and_the_connection_keeps_working(server: DnsServer) -> None:
    good = dns.message.make_query(WEB, "A")
    payload = framed(b"\x12\x34" + b"\x00" * 10 + b"\xff\xff\xff") + framed(b"\x01") + framed(good.to_wire())
    formerr, ok = await tcp_exchange(port_of(server), payload, replies=2)
    assert formerr.id == 0x1234 and formerr.rcode() == dns.rcode.FORMERR
    assert ok.id == good.id and ok.rcode() == dns.rcode.NOERROR


async def test_tcp_idle_connections_are_closed(server: DnsServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server after its idle timeout
    writer.close()


async def test_tcp_connections_are_bounded(server: DnsServer) -> None:
    held = [await asyncio.open_connection("127.0.0.1", port_of(server)) for _ in range(4)]
    await asyncio.sleep(0.05)
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
    assert await asyncio.wait_for(reader.read(), 5) == b""  # over the bound: closed at once
    for _, w in held + [(reader, writer)]:
        w.close()


async def test_udp_garbage_never_stops_the_server(server: DnsServer) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        for junk in (
            b"",
            b"\x00",
            b"\xff" * 11,
            b"\x00\x01" + b"\xff" * 600,
            b"\x00" * 12 + b"\xc0\x0c\x00\x01\x00\x01",
        ):
            await loop.sock_sendto(sock, junk, ("127.0.0.1", port_of(server)))
    finally:
        sock.close()
    reply = await dns.asyncquery.udp(
        dns.message.make_query(WEB, "A"), "127.0.0.1", port=port_of(server), timeout=5
    )
    assert reply.answer[0][0].to_text() == "127.214.0.5"


async def test_several_listen_addresses(registry: Registry) -> None:
    server = DnsServer(registry, listen=[("127.0.0.1", 0), ("127.0.0.2", 0)])
    await server.start()
    try:
        assert [host for host, _ in server.addresses] == ["127.0.0.1", "127.0.0.2"]
        for host, port in server.addresses:
            reply = await dns.asyncquery.udp(dns.message.make_query(WEB, "A"), host, port=port, timeout=5)
            assert reply.answer[0][0].to_text() == "127.214.0.5"
    finally:
        await server.close()
    assert server.addresses == []


async def test_metrics_count_the_queries(server: DnsServer) -> None:
    port = port_of(server)
    for _ in range(3):
        await dns.asyncquery.udp(
            dns.message.make_query("nope.cluster.local", "SRV"), "127.0.0.1", port=port, timeout=5
        )
    await dns.asyncquery.tcp(dns.message.make_query(WEB, "A"), "127.0.0.1", port=port, timeout=5)
    text = generate_latest(REGISTRY).decode()
    series = 'meshd_dns_queries_total{qtype="SRV",rcode="NXDOMAIN",transport="udp"}'
    line = next(line for line in text.splitlines() if line.startswith(series))
    assert float(line.split()[-1]) >= 3
    assert "meshd_dns_cache_entries" in text and "meshd_dns_answer_duration_seconds_bucket" in text


def mutated_packets(seed: int, count: int) -> list[bytes]:
    """Random bytes, cut and bit-flipped queries, huge label counts, compression loops, unknown types."""
    rng = random.Random(seed)
    valid = [
        dns.message.make_query(n, t).to_wire() for n, t in ((WEB, "A"), (SRV, "SRV"), ("x.example", "TXT"))
    ]
    valid.append(dns.message.make_query(WEB, "A", use_edns=0, payload=4096).to_wire())
    packets = []
    for _ in range(count):
        kind = rng.randrange(5)
        base = bytearray(rng.choice(valid))
        if kind == 0:
            packets.append(rng.randbytes(rng.randrange(0, 700)))
        elif kind == 1:
            packets.append(bytes(base[: rng.randrange(len(base))]))
        elif kind == 2:
            for _ in range(rng.randrange(1, 6)):
                base[rng.randrange(len(base))] ^= 1 << rng.randrange(8)
            packets.append(bytes(base))
        elif kind == 3:
            packets.append(bytes(base[:12]) + b"\x01a" * rng.randrange(100, 400) + b"\x00\x00\x01\x00\x01")
        else:
            loop = struct.pack(">H", 0xC000 | rng.choice([12, 14, rng.randrange(0x4000)]))
            packets.append(bytes(base[:12]) + b"\x01a" + loop + struct.pack(">HH", rng.randrange(65536), 1))
    return packets


async def test_fuzzed_packets_over_udp_and_tcp_never_stop_the_server(server: DnsServer) -> None:
    port = port_of(server)
    packets = mutated_packets(seed=4, count=300)
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        for packet in packets:
            await loop.sock_sendto(sock, packet, ("127.0.0.1", port))
    finally:
        sock.close()
    for start in range(0, len(packets), 50):  # several connections, each sent a burst of framed garbage
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        last = dns.message.make_query(WEB, "A")
        last.id = 0xD0D0  # the garbage may carry any other ID, never answered with this one's answer
        writer.write(b"".join(framed(p) for p in packets[start : start + 50]) + framed(last.to_wire()))
        await writer.drain()
        while True:  # every framed message is answered in order or dropped; the last one is answered
            (length,) = struct.unpack(">H", await asyncio.wait_for(reader.readexactly(2), 5))
            reply = dns.message.from_wire(await reader.readexactly(length))
            if reply.id == last.id and reply.answer:
                break
        writer.close()
    for _ in range(3):  # still answering on both transports
        udp = await dns.asyncquery.udp(dns.message.make_query(WEB, "A"), "127.0.0.1", port=port, timeout=5)
        tcp = await dns.asyncquery.tcp(dns.message.make_query(WEB, "A"), "127.0.0.1", port=port, timeout=5)
        assert udp.answer[0][0].to_text() == tcp.answer[0][0].to_text() == "127.214.0.5"

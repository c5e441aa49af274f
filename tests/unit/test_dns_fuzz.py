"""Property tests: whatever bytes arrive, the DNS parser and server answer sanely or drop, and never raise."""

from __future__ import annotations

import asyncio
import struct

import dns.message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshd.dns.codec import parse_query
from meshd.dns.responder import Responder
from meshd.dns.server import DnsServer, _TcpProtocol, _UdpProtocol, _UdpReader
from meshd.model.endpoints import PortInfo, ServiceInfo, ServiceKey
from meshd.registry.endpoints import PodRecord
from meshd.registry.registry import Registry


def make_registry(pods: int) -> Registry:
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


REGISTRY = make_registry(30)
RESPONDER = Responder(REGISTRY)
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

labels = st.binary(min_size=1, max_size=63).map(lambda b: bytes([len(b)]) + b)
known = st.sampled_from(
    [
        b"\x03web\x07default\x03svc\x07cluster\x05local\x00",
        b"\x07cluster\x05local\x00",
        b"\x00",
        b"\x05_http\x04_tcp\x03web\x07default\x03svc\x07cluster\x05local\x00",
    ]
)
in_zone = st.lists(labels, min_size=1, max_size=4).map(lambda ls: b"".join(ls) + b"\x07cluster\x05local\x00")
pointer = st.integers(0, 0x3FFF).map(lambda p: struct.pack(">H", 0xC000 | p))
names = st.one_of(
    known,
    st.lists(labels, max_size=8).map(lambda ls: b"".join(ls) + b"\x00"),
    st.integers(100, 300).map(lambda n: b"\x01a" * n + b"\x00"),  # huge label counts, names over 255 bytes
    st.tuples(st.lists(labels, max_size=3), pointer).map(lambda t: b"".join(t[0]) + t[1]),  # pointers, loops
    st.binary(max_size=40),
)
opt = st.one_of(
    st.just(b""),
    st.builds(
        lambda size, ext, version, flags, rdata: (
            b"\x00\x00\x29" + struct.pack(">HBBHH", size, ext, version, flags, len(rdata)) + rdata
        ),
        st.integers(0, 65535),
        st.integers(0, 255),
        st.integers(0, 3),
        st.integers(0, 65535),
        st.binary(max_size=30),
    ),
)


@st.composite
def packets(draw: st.DrawFn) -> bytes:
    """Half plain queries (to reach the caches and every answer), half with broken headers, counts and cuts."""
    sane = draw(st.booleans())
    name = draw(st.one_of(known, in_zone) if sane and draw(st.booleans()) else names)
    tail = draw(opt)
    qid = draw(st.integers(0, 65535))
    if sane:
        flags = draw(st.sampled_from([0, 0x0100, 0x0120, 0x0110]))
        counts = (1, 0, 0, 1 if tail else 0)
    else:
        flags = draw(st.one_of(st.sampled_from([0, 0x0100, 0x2800, 0x8000]), st.integers(0, 65535)))
        counts = (
            draw(st.sampled_from([0, 1, 1, 2, 65535])),
            draw(st.sampled_from([0, 0, 1])),
            draw(st.sampled_from([0, 0, 1])),
            draw(st.sampled_from([0, 1 if tail else 0, 2])),
        )
    qtype = draw(st.one_of(st.sampled_from([1, 28, 33, 6, 2, 255, 252, 251, 41, 65]), st.integers(0, 65535)))
    qclass = draw(st.sampled_from([1, 1, 1, 3, 255, 254, 0, 4242]))
    wire = struct.pack(">HHHHHH", qid, flags, *counts) + name + struct.pack(">HH", qtype, qclass) + tail
    cut = None if sane else draw(st.one_of(st.none(), st.integers(0, len(wire))))
    return wire if cut is None else wire[:cut]


any_packet = st.one_of(st.binary(max_size=600), packets())


def check_reply(packet: bytes, reply: bytes | None, *, limit: int) -> None:
    if reply is None:
        return
    assert len(reply) >= 12 and reply[:2] == packet[:2] and reply[2] & 0x80
    assert len(reply) <= limit
    dns.message.from_wire(reply)  # every reply is a well-formed message


@SETTINGS
@given(any_packet)
def test_parser_never_raises(packet: bytes) -> None:
    q = parse_query(packet)
    if q is not None:
        assert 12 < q.end <= len(packet)


@SETTINGS
@given(any_packet)
def test_responder_never_raises_and_replies_are_well_formed(packet: bytes) -> None:
    check_reply(packet, RESPONDER.answer_udp(packet), limit=1232)
    check_reply(packet, RESPONDER.answer_udp(packet), limit=1232)  # again, from a cache if it was cached
    check_reply(packet, RESPONDER.answer_tcp(packet), limit=65535)


class FakeDatagramTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, object]] = []

    def sendto(self, data: bytes, addr: object) -> None:
        self.sent.append((data, addr))


class FakeSocket:
    """recvfrom() hands out the queued datagrams, then would block; sendto() records."""

    def __init__(self, datagrams: list[bytes]) -> None:
        self.datagrams = list(datagrams)
        self.sent: list[bytes] = []

    def recvfrom(self, size: int) -> tuple[bytes, tuple[str, int]]:
        if not self.datagrams:
            raise BlockingIOError
        return self.datagrams.pop(0)[:size], ("127.0.0.1", 5353)

    def sendto(self, data: bytes, addr: object) -> None:
        self.sent.append(data)

    def close(self) -> None: ...


@SETTINGS
@given(st.lists(any_packet, max_size=5))
def test_datagram_handlers_never_raise(packets_: list[bytes]) -> None:
    sock = FakeSocket(packets_)
    _UdpReader(sock, RESPONDER, lambda: 0).readable()  # type: ignore[arg-type]
    protocol = _UdpProtocol(RESPONDER, lambda: 0)
    transport = FakeDatagramTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    for packet in packets_:
        protocol.datagram_received(packet, ("127.0.0.1", 5353))
    assert sock.datagrams == [] and sock.sent == [data for data, _ in transport.sent]
    for data in sock.sent:
        dns.message.from_wire(data)


class FakeStreamTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


LOOP = asyncio.new_event_loop()


@SETTINGS
@given(
    st.lists(any_packet, max_size=4),
    st.lists(st.integers(1, 64), min_size=1, max_size=8),
    st.binary(max_size=3),
)
def test_tcp_stream_handler_never_raises(packets_: list[bytes], cuts: list[int], trailer: bytes) -> None:
    stream = b"".join(struct.pack(">H", len(p)) + p for p in packets_) + trailer

    async def feed() -> bytes:
        server = DnsServer(REGISTRY, listen=[])
        server.responder = RESPONDER
        protocol = _TcpProtocol(server)
        transport = FakeStreamTransport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        rest, i = stream, 0
        while rest:
            size = cuts[i % len(cuts)]
            protocol.data_received(rest[:size])
            rest, i = rest[size:], i + 1
        protocol.connection_lost(None)
        return bytes(transport.written)

    written = LOOP.run_until_complete(feed())
    while written:  # the answers come back framed, one per answered message
        (length,) = struct.unpack(">H", written[:2])
        dns.message.from_wire(written[2 : 2 + length])
        written = written[2 + length :]


def test_the_generated_packets_reach_every_kind_of_answer() -> None:
    """Guards the strategies themselves: they must produce answers, errors and drops, not only one kind."""
    responder = Responder(REGISTRY)
    find = settings(max_examples=300, deadline=None, database=None)
    rcodes: set[int] = set()

    @find
    @given(packets())
    def collect(packet: bytes) -> None:
        reply = responder.answer_udp(packet)
        rcodes.add(-1 if reply is None else reply[3] & 0xF)

    collect()
    assert {-1, 0, 1, 3, 5} <= rcodes

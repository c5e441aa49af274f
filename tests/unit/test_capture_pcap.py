"""The capture reader's decisions (tests/integration/capture.py) on pcap files made here: TLS record framing
against plaintext, TCP reassembly (out of order, retransmitted, a capture that starts mid-handshake), pcap
byte orders and the frames it skips."""

from __future__ import annotations

import struct

import pytest

from tests.integration.capture import classify, flows_between, read_pcap, summarise, tcp_flows, tls_records

HELLO = b"\x16\x03\x01\x00\x06" + b"\x01\x00\x00\x02\x03\x03"  # a handshake record (a short ClientHello shape)
APP = b"\x17\x03\x03\x00\x04abcd"


@pytest.mark.parametrize(("data", "expected"), [
    (HELLO, True),
    (HELLO + APP + APP, True),
    (HELLO + APP[:7], True),  # the last record cut short by the capture's end
    (b"\x16\x03", True),  # so is its header
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", False),  # gRPC / h2 prior knowledge (etcd's clients)
    (b'{"key":"Zm9v"}', False),
    (HELLO + b"GET / HTTP/1.1\r\n", False),  # TLS then plaintext on one connection
    (b"\x16\x03\x09\x00\x01\x00", False),  # no such TLS version
    (b"\x16\x03\x03\xff\xff" + b"x" * 10, False),  # longer than a record may be
    (b"\x16\x03\x03\x00\x00", False),  # an empty handshake record
    (b"\x17\x03\x03\x00\x00", True),  # empty application data is allowed
])  # fmt: skip
def test_tls_records(data: bytes, expected: bool) -> None:
    assert tls_records(data) is expected


@pytest.mark.parametrize(("sent", "received", "kind"), [
    (b"", b"", "empty"),
    (HELLO, b"", "tls"),
    (HELLO, APP, "tls"),
    (HELLO, b"HTTP/1.1 400 Bad Request\r\n", "plaintext"),  # a plaintext server answering a TLS client
    (b"GET /", b"", "plaintext"),
])  # fmt: skip
def test_classify(sent: bytes, received: bytes, kind: str) -> None:
    assert classify(sent, received) == kind


def frame(src: tuple[str, int], dst: tuple[str, int], seq: int, flags: int, payload: bytes = b"") -> bytes:
    tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seq, 0, 5 << 4, flags, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, bytes(map(int, src[0].split("."))),
                     bytes(map(int, dst[0].split("."))))
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp


def pcap(frames: list[bytes], *, endian: str = "<", linktype: int = 1) -> bytes:
    out = struct.pack(endian + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)
    for n, data in enumerate(frames):
        out += struct.pack(endian + "IIII", 1000 + n, 0, len(data), len(data)) + data
    return out


C, S = ("10.1.2.10", 40000), ("10.1.2.11", 4433)
ARP = b"\xff" * 6 + b"\x04" * 6 + b"\x08\x06" + b"\x00" * 28
UDP = frame(C, S, 0, 0)[:23] + b"\x11" + frame(C, S, 0, 0)[24:]  # protocol 17: skipped


@pytest.mark.parametrize("endian", ["<", ">"])
def test_a_tls_flow_reassembled_out_of_order_and_retransmitted(endian: str) -> None:
    frames = [ARP, UDP, frame(C, S, 100, 0x02), frame(S, C, 500, 0x12), frame(C, S, 101, 0x10),
              frame(C, S, 101 + 6, 0x18, HELLO[6:]),  # the second half first
              frame(C, S, 101, 0x18, HELLO[:6]),
              frame(C, S, 101, 0x18, HELLO[:6]),  # a retransmission
              frame(S, C, 501, 0x18, APP), frame(C, S, 101 + len(HELLO), 0x11)]
    (flow,) = tcp_flows(read_pcap(pcap(frames, endian=endian)))
    assert (flow.client, flow.server, flow.sent, flow.received, flow.kind) == (C, S, HELLO, APP, "tls")
    assert flow.segments == 8


def test_a_capture_starting_mid_connection_and_a_plaintext_flow_beside_it() -> None:
    other = ("10.1.2.1", 2379)
    frames = [frame(S, C, 500, 0x12),  # the SYN-ACK first: the client is its destination
              frame(C, S, 101, 0x18, APP), frame(C, other, 7, 0x18, b"POST /v3/kv/range HTTP/1.1\r\n")]
    flows = tcp_flows(read_pcap(pcap(frames)))
    assert [(f.client, f.kind) for f in flows] == [(C, "tls"), (C, "plaintext")]
    summary = summarise(flows)
    assert [len(summary[k]) for k in ("tls", "plaintext", "empty")] == [1, 1, 0]
    assert summary["plaintext"][0].startswith("10.1.2.10:40000 -> 10.1.2.1:2379 plaintext")
    assert [f.kind for f in flows_between(flows, ["10.1.2.10", "10.1.2.11"])] == ["tls"]  # etcd's left out


def test_a_hole_stops_the_stream_and_other_files_are_refused() -> None:
    frames = [frame(C, S, 100, 0x02), frame(C, S, 101, 0x18, HELLO), frame(C, S, 101 + len(HELLO) + 50, 0x18, b"x")]
    (flow,) = tcp_flows(read_pcap(pcap(frames)))
    assert flow.sent == HELLO and flow.kind == "tls"
    assert list(read_pcap(pcap([frame(C, S, 1, 0x18, b"x")], linktype=105))) == []  # 802.11: not read
    with pytest.raises(ValueError, match="pcap"):
        list(read_pcap(b"\x0a\x0d\x0d\x0a" + b"\x00" * 40))  # pcapng


def test_a_port_used_again_is_a_new_flow_and_a_retransmitted_syn_is_not() -> None:
    frames = [frame(C, S, 100, 0x02), frame(C, S, 100, 0x02),  # the SYN sent twice: one connection
              frame(S, C, 500, 0x12), frame(C, S, 101, 0x18, HELLO), frame(C, S, 101 + len(HELLO), 0x11),
              frame(C, S, 9000, 0x02), frame(S, C, 7000, 0x12),  # the same ports seconds later: a new one
              frame(C, S, 9001, 0x18, HELLO), frame(S, C, 7001, 0x18, APP)]
    flows = tcp_flows(read_pcap(pcap(frames)))
    assert [(f.sent, f.received, f.kind) for f in flows] == [(HELLO, b"", "tls"), (HELLO, APP, "tls")]


def udp_frame(src: tuple[str, int], dst: tuple[str, int], payload: bytes, *, fragment: int = 0) -> bytes:
    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, fragment, 64, 17, 0,
                     bytes(map(int, src[0].split("."))), bytes(map(int, dst[0].split("."))))
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + udp


def test_udp_datagrams_are_read_beside_the_tcp_segments() -> None:
    from tests.integration.capture import read_udp

    query = b"\x12\x34\x01\x00\x00\x01" + b"\x00" * 6 + b"\x01x\x04test\x00\x00\x01\x00\x01"
    data = pcap([udp_frame(C, ("10.1.2.11", 53), query), frame(C, S, 1, 0x02), ARP,
                 udp_frame(("10.1.2.11", 53), C, b"answer"), udp_frame(C, S, b"later", fragment=185)])
    found = [(d.src, d.dst, d.payload) for d in read_udp(data)]
    assert found == [(C, ("10.1.2.11", 53), query), (("10.1.2.11", 53), C, b"answer")]  # not a later fragment
    assert [s.flags for s in read_pcap(data)] == [0x02]

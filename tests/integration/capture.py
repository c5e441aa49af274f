"""What crosses a test LAN, as a wire sees it: `capture(interface)` runs tcpdump (Debian's) into a pcap for the
length of a `with` block, and `tcp_flows` / `summarise` read that pcap back and tell, per TCP connection, whether
everything each side sent was TLS records or something else (plaintext).

A flow is TLS when each direction's reassembled bytes are a sequence of TLS records (content type 20-23, version
3.x, a length no larger than a record may be), as a record layer is; a first byte 0x16 0x03 alone would pass an
HTTP/2 prior-knowledge stream that happened to start so, and a STARTTLS upgrade from plaintext would not count
as TLS. Reading the pcap here (Ethernet or Linux cooked captures, IPv4, TCP) keeps the verdict independent of a
dissector's port heuristics (tshark only decodes TLS on ports it knows unless told), so a mesh on any port is
judged the same.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import struct
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ETHERNET, LINUX_SLL, LINUX_SLL2 = 1, 113, 276
TLS_CONTENT_TYPES = {20, 21, 22, 23}  # change_cipher_spec, alert, handshake, application_data
TLS_MAX_RECORD = 2**14 + 2048  # TLSCiphertext.length limit (RFC 5246 6.2.3)


@dataclass(frozen=True)
class Segment:
    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    seq: int
    flags: int  # TCP flags: FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10
    payload: bytes


@dataclass(frozen=True)
class Datagram:
    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


@dataclass
class Flow:
    client: tuple[str, int]  # who sent the SYN (else the first packet's sender)
    server: tuple[str, int]
    sent: bytes = b""  # client -> server, reassembled
    received: bytes = b""  # server -> client
    kind: str = "empty"  # tls | plaintext | empty (no payload either way)
    segments: int = 0

    def __str__(self) -> str:
        return (f"{self.client[0]}:{self.client[1]} -> {self.server[0]}:{self.server[1]} {self.kind} "
                f"({len(self.sent)} B sent, {len(self.received)} B back, {self.segments} segments)")


def tls_records(data: bytes) -> bool:
    """Whether `data` is a sequence of TLS records (a last record cut short by the capture's end counts)."""
    offset = 0
    while offset < len(data):
        header = data[offset:offset + 5]
        if header[0] not in TLS_CONTENT_TYPES or (len(header) > 1 and header[1] != 3):
            return False
        if len(header) > 2 and header[2] > 4:
            return False
        if len(header) < 5:
            return True  # the header itself cut short
        length = int.from_bytes(header[3:5], "big")
        if (length == 0 and header[0] != 23) or length > TLS_MAX_RECORD:
            return False
        offset += 5 + length
    return True


def classify(sent: bytes, received: bytes) -> str:
    if not sent and not received:
        return "empty"
    return "tls" if all(tls_records(side) for side in (sent, received) if side) else "plaintext"


def read_pcap(data: bytes) -> Iterator[Segment]:
    """The IPv4 TCP segments of a classic pcap file (what `tcpdump -w` writes); other frames are skipped."""
    for when, ip in _ip_packets(data):
        segment = _tcp_segment(ip, when)
        if segment is not None:
            yield segment


def read_udp(data: bytes) -> Iterator[Datagram]:
    """The IPv4 UDP datagrams of a classic pcap file (first fragments only: a later one has no UDP header)."""
    for when, ip in _ip_packets(data):
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17 or int.from_bytes(ip[6:8], "big") & 0x1FFF:
            continue
        header, total = (ip[0] & 0x0F) * 4, int.from_bytes(ip[2:4], "big")
        udp = ip[header:total]
        if len(udp) < 8:
            continue
        sport, dport = struct.unpack("!HH", udp[:4])
        yield Datagram(when, (".".join(map(str, ip[12:16])), sport), (".".join(map(str, ip[16:20])), dport),
                       bytes(udp[8:]))


def _ip_packets(data: bytes) -> Iterator[tuple[float, bytes]]:
    """(time, IPv4 packet) of every frame of a classic pcap file that carries one."""
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError("not a classic pcap file (pcapng is not read here; tcpdump -w writes pcap)")
    nanos = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(endian + "I", data[20:24])[0] & 0x0FFFFFFF
    offset = 24
    while offset + 16 <= len(data):
        seconds, fraction, captured, _ = struct.unpack(endian + "IIII", data[offset:offset + 16])
        frame = data[offset + 16:offset + 16 + captured]
        offset += 16 + captured
        ip = _ip_packet(frame, linktype)
        if ip is not None:
            yield seconds + fraction / (1e9 if nanos else 1e6), ip


def _ip_packet(frame: bytes, linktype: int) -> bytes | None:
    if linktype == ETHERNET:
        ethertype, start = int.from_bytes(frame[12:14], "big"), 14
        while ethertype in (0x8100, 0x88A8) and len(frame) >= start + 4:  # VLAN tags
            ethertype, start = int.from_bytes(frame[start + 2:start + 4], "big"), start + 4
    elif linktype == LINUX_SLL:
        ethertype, start = int.from_bytes(frame[14:16], "big"), 16
    elif linktype == LINUX_SLL2:
        ethertype, start = int.from_bytes(frame[0:2], "big"), 20
    else:
        return None
    return frame[start:] if ethertype == 0x0800 else None


def _tcp_segment(ip: bytes, when: float) -> Segment | None:
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
        return None
    header, total = (ip[0] & 0x0F) * 4, int.from_bytes(ip[2:4], "big")
    if int.from_bytes(ip[6:8], "big") & 0x1FFF:  # a later fragment: no TCP header in it
        return None
    tcp = ip[header:total]
    if len(tcp) < 20:
        return None
    src, dst = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20]))
    sport, dport, seq = struct.unpack("!HHI", tcp[:8])
    data_offset = (tcp[12] >> 4) * 4
    return Segment(when, (src, sport), (dst, dport), seq, tcp[13], bytes(tcp[data_offset:]))


@dataclass
class _Direction:
    start: int | None = None  # the first payload byte's sequence number (ISN + 1 when the SYN was seen)
    chunks: dict[int, bytes] = field(default_factory=dict)

    def add(self, segment: Segment) -> None:
        if segment.flags & 0x02:
            self.start = (segment.seq + 1) & 0xFFFFFFFF
        if segment.payload:
            if self.start is None:
                self.start = segment.seq
            relative = (segment.seq - self.start) & 0xFFFFFFFF
            if len(segment.payload) > len(self.chunks.get(relative, b"")):  # a retransmission adds nothing
                self.chunks[relative] = segment.payload

    def bytes(self) -> bytes:
        out = bytearray()
        for position in sorted(self.chunks):
            chunk = self.chunks[position]
            if position > len(out):  # a hole (a segment the capture missed): what follows cannot be framed
                break
            out += chunk[len(out) - position:]
        return bytes(out)


def tcp_flows(segments: Iterable[Segment]) -> list[Flow]:
    """One Flow per TCP connection, in the order they started, each direction reassembled by sequence number.
    An address pair used again (a new SYN, as a client reusing its port seconds later) is a new Flow."""
    flows: dict[frozenset[tuple[str, int]], tuple[Flow, dict[tuple[str, int], _Direction]]] = {}
    started: list[tuple[Flow, dict[tuple[str, int], _Direction]]] = []
    for segment in segments:
        key = frozenset((segment.src, segment.dst))
        opening = segment.flags & 0x12 == 0x02  # a SYN without ACK: a connection begins (again, if its ISN is new)
        if key not in flows or (opening and flows[key][1][segment.src].start not in (None, (segment.seq + 1) & 0xFFFFFFFF)):
            client = segment.src if not (segment.flags & 0x12 == 0x12) else segment.dst  # a SYN-ACK: the other
            server = segment.dst if client == segment.src else segment.src
            flows[key] = (Flow(client, server), {client: _Direction(), server: _Direction()})
            started.append(flows[key])
        flow, directions = flows[key]
        flow.segments += 1
        directions[segment.src].add(segment)
    found = []
    for flow, directions in started:
        flow.sent, flow.received = directions[flow.client].bytes(), directions[flow.server].bytes()
        flow.kind = classify(flow.sent, flow.received)
        found.append(flow)
    return found


def flows_between(flows: Iterable[Flow], addresses: Iterable[str]) -> list[Flow]:
    """The flows whose two ends are both among `addresses` (e.g. the test hosts' own, leaving out etcd on the
    bridge's address): what "only TLS between nodes" is about."""
    wanted = set(addresses)
    return [flow for flow in flows if flow.client[0] in wanted and flow.server[0] in wanted]


def flows_to(flows: Iterable[Flow], server: tuple[str, int]) -> list[Flow]:
    """The flows to one server ADDRESS:PORT (e.g. etcd on the bridge's address), from whichever client."""
    return [flow for flow in flows if flow.server == server]


def summarise(flows: Iterable[Flow]) -> dict[str, list[str]]:
    """{"tls": [...], "plaintext": [...], "empty": [...]}: each flow as "client -> server ..." text."""
    summary: dict[str, list[str]] = {"tls": [], "plaintext": [], "empty": []}
    for flow in flows:
        summary[flow.kind].append(str(flow))
    return summary


class Capture:
    """A running tcpdump; `flows()` once the `with` block has ended."""

    def __init__(self, interface: str, path: Path, bpf: str) -> None:
        self.interface, self.path, self.bpf = interface, path, bpf
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        tcpdump = shutil.which("tcpdump")
        if tcpdump is None:
            raise RuntimeError("tcpdump is not installed (Debian: apt-get install tcpdump)")
        # --immediate-mode: every packet handed over at once (else a buffer's worth is lost at the stop)
        self.proc = subprocess.Popen([tcpdump, "-i", self.interface, "-n", "-s", "0", "--immediate-mode", "-U",
                                      "-w", str(self.path), *([self.bpf] if self.bpf else [])],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline().decode(errors="replace")  # "listening on IF, ..." once it captures
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"tcpdump on {self.interface}: {line.strip()}")
        deadline = time.monotonic() + timeout
        while not self.path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> str:
        """Stops tcpdump (SIGINT: it writes out what it has); its closing statistics."""
        if self.proc is None:
            return ""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.proc = None
        return err.decode(errors="replace")

    def segments(self) -> list[Segment]:
        return list(read_pcap(self.path.read_bytes())) if self.path.exists() else []

    def flows(self) -> list[Flow]:
        return tcp_flows(self.segments())

    def datagrams(self) -> list[Datagram]:
        """The UDP datagrams (capture with a filter that keeps them: bpf="" or "udp")."""
        return list(read_udp(self.path.read_bytes())) if self.path.exists() else []


@contextlib.contextmanager
def capture(interface: str, path: Path, *, bpf: str = "tcp", settle: float = 0.3) -> Iterator[Capture]:
    """tcpdump on `interface` (a test LAN's bridge sees every frame between its hosts, and those between a host
    and the machine) for the block's length, into the pcap `path`; waits `settle` seconds at the end for the
    last packets. `bpf`: tcpdump's filter ("" for everything)."""
    running = Capture(interface, path, bpf)
    running.start()
    try:
        yield running
        time.sleep(settle)
    finally:
        running.stop()


__all__ = ["Capture", "Datagram", "Flow", "Segment", "capture", "classify", "flows_between", "flows_to", "read_pcap",
           "read_udp", "summarise", "tcp_flows", "tls_records"]

"""DNS wire format: a small parser for plain queries (the cache key), dnspython for everything else.

`parse_query` recognises the common case (opcode QUERY, one uncompressed question, no answer/authority,
at most one OPT) in a few slices; anything it declines goes to `dns.message.from_wire` on the general path.
`render` turns a zone `Answer` into a response; `error_reply` builds FORMERR/NOTIMP from a bare header.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from meshd.dns.zone import REFUSED, Answer, Record

HEADER = 12
QR, AA, TC, RD, CD = 0x8000, 0x0400, 0x0200, 0x0100, 0x0010
DO = 0x8000
IN, CLASS_ANY = 1, 255
MIN_UDP = 512
DEFAULT_MAX_UDP = 1232  # the DNS flag day 2020 default: no IP fragmentation
MAX_TCP = 65535


@dataclass(frozen=True, slots=True)
class Question:
    """What decides the answer to a plain query; `end` is the offset just past the question section."""

    end: int
    qname: bytes  # wire form, lowercased
    qtype: int
    qclass: int
    flags: int  # the query's RD and CD bits (copied into the response)
    edns: bool
    payload: int  # the client's UDP payload size (512 without EDNS)
    do: bool


def parse_query(data: bytes) -> Question | None:
    """The question of a plain standard query, or None for anything else (malformed or unusual)."""
    n = len(data)
    if (
        n < HEADER + 5
        or data[2] & 0xF8
        or data[4:10] != b"\x00\x01\x00\x00\x00\x00"
        or data[10]
        or data[11] > 1
    ):
        return None
    i = HEADER
    while True:
        length = data[i]
        if length == 0:
            break
        if length > 63:
            return None
        i += length + 1
        if i >= n:
            return None
    end = i + 5
    if end > n or end - 4 - HEADER > 255:
        return None
    flags = ((data[2] << 8) | data[3]) & (RD | CD)
    qtype = (data[end - 4] << 8) | data[end - 3]
    qclass = (data[end - 2] << 8) | data[end - 1]
    if data[11] == 0:
        if end != n:
            return None
        return Question(end, data[HEADER : end - 4].lower(), qtype, qclass, flags, False, MIN_UDP, False)
    # one additional record: it must be an OPT pseudo-record of version 0 at the owner "."
    if n - end < 11 or data[end] != 0 or data[end + 1] != 0 or data[end + 2] != 41:
        return None
    if data[end + 5] or data[end + 6] or 11 + ((data[end + 9] << 8) | data[end + 10]) != n - end:
        return None
    payload = (data[end + 3] << 8) | data[end + 4]
    do = bool(data[end + 7] & 0x80)
    return Question(end, data[HEADER : end - 4].lower(), qtype, qclass, flags, True, payload, do)


def udp_limit(payload: int, edns: bool, *, max_udp: int = DEFAULT_MAX_UDP) -> int:
    """The largest UDP answer for this client: 512 without EDNS, else its payload size within [512, max_udp]."""
    return max(MIN_UDP, min(payload, max_udp)) if edns else MIN_UDP


def render(
    answer: Answer,
    query: dns.message.Message,
    *,
    limit: int,
    max_udp: int = DEFAULT_MAX_UDP,
) -> bytes:
    """The response to `query` carrying `answer`, truncated (TC) to `limit` bytes by whole RRsets."""
    response = dns.message.Message(id=query.id)
    response.flags = QR | (query.flags & (RD | CD)) | (0 if answer.rcode == REFUSED else AA)
    response.set_rcode(dns.rcode.Rcode.make(answer.rcode))
    response.question = list(query.question)
    response.answer = _rrsets(answer.answer)
    response.authority = _rrsets(answer.authority)
    response.additional = _rrsets(answer.additional)
    if query.edns >= 0:
        response.use_edns(0, query.ednsflags & DO, max_udp)
    return response.to_wire(max_size=limit, prefer_truncation=True)


def status_reply(query: dns.message.Message, rcode: int, *, max_udp: int = DEFAULT_MAX_UDP) -> bytes:
    """A response with only a status (BADVERS, NOTIMP, REFUSED...) and the query's question."""
    response = dns.message.Message(id=query.id)
    response.flags = QR | (query.flags & (RD | CD))
    response.set_opcode(query.opcode())
    response.question = list(query.question)[:1]
    if query.edns >= 0 or rcode > 15:
        response.use_edns(0, query.ednsflags & DO, max_udp)
    response.set_rcode(dns.rcode.Rcode.make(rcode))
    return response.to_wire(max_size=MAX_TCP, prefer_truncation=True)


def error_reply(data: bytes, rcode: int) -> bytes | None:
    """A header-only response (FORMERR, NOTIMP) to a packet whose header is readable; None when it is not."""
    if len(data) < HEADER or data[2] & 0x80:
        return None
    flags = QR | (((data[2] << 8) | data[3]) & (0x7800 | RD | CD)) | (rcode & 0xF)
    return data[:2] + flags.to_bytes(2, "big") + bytes(8)


def _rrsets(records: tuple[Record, ...]) -> list[dns.rrset.RRset]:
    grouped: dict[tuple[str, int], list[Record]] = {}
    for record in records:
        grouped.setdefault((record.name, record.rtype), []).append(record)
    return [
        dns.rrset.from_text_list(
            name,
            group[0].ttl,
            dns.rdataclass.IN,
            dns.rdatatype.RdataType.make(rtype),
            [r.data for r in group],
        )
        for (name, rtype), group in grouped.items()
    ]

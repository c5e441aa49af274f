"""Which protocol a Service port carries: declared (appProtocol, port name, annotation, well-known port) or
detected from the first bytes a client sends. Pure decisions; the dispatch layer (sidecar/dispatch.py) acts.

The order is DESIGN.md's "Protocols: what a Service carries": appProtocol, then the port's name, then the
`meshd.io/opaque-ports` annotation, then Linkerd's server-speaks-first ports, else detection.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping

from meshd.model.endpoints import PortInfo

from .config import OPAQUE_PORTS_ANNOTATION, parse_port_ranges


class Protocol(enum.Enum):
    HTTP1 = "http1"
    H2C = "h2c"  # HTTP/2 with prior knowledge; gRPC too
    TCP = "tcp"  # opaque: bytes both ways, balanced per connection
    UDP = "udp"  # datagrams, balanced per client flow
    DETECT = "detect"  # read the first bytes, then one of HTTP1, H2C, TCP


# appProtocol values (Kubernetes' standard ones and the IANA names people use); anything else -> detect
APP_PROTOCOLS: Mapping[str, Protocol] = {
    "http": Protocol.HTTP1,
    "kubernetes.io/ws": Protocol.HTTP1,  # WebSocket starts as an HTTP/1.1 Upgrade
    "kubernetes.io/h2c": Protocol.H2C,
    "h2c": Protocol.H2C,
    "grpc": Protocol.H2C,
    "tcp": Protocol.TCP,
}
# port names of protocols that are not HTTP (a prefix match: postgres, postgresql, mongodb, kafka-broker...)
OPAQUE_NAMES = ("tcp", "redis", "mysql", "postgres", "mongo", "amqp", "kafka", "memcache", "smtp")
# ports whose protocol speaks first, so detection would always wait for its timeout (Linkerd's list)
SERVER_SPEAKS_FIRST = frozenset((25, 587, 3306, 4444, 5432, 6379, 9300, 11211))
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DETECT_LIMIT = 8192  # a request line longer than this is not taken for HTTP/1
# an HTTP/1 request line: method token, SP, target, SP, version (RFC 9112 section 3); a partial one may
# still become it
_REQUEST_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [\x21-\x7e\x80-\xff]+ HTTP/1\.[01]\r?\n")
_PARTIAL_LINE = re.compile(
    rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
    rb"(?: (?:[\x21-\x7e\x80-\xff]+(?: (?:H(?:T(?:T(?:P(?:/(?:1(?:\.(?:[01]\r?)?)?)?)?)?)?)?)?)?)?)?"
)


def protocol_by_name(name: str) -> Protocol | None:
    """What a Service port's name declares, if anything."""
    name = name.lower()
    if name == "http" or name.startswith("http-"):
        return Protocol.HTTP1
    if name.startswith(("http2", "grpc", "h2c")):
        return Protocol.H2C
    if name.startswith(OPAQUE_NAMES):
        return Protocol.TCP
    return None


def opaque_ports(annotations: Mapping[str, str]) -> tuple[tuple[int, int], ...]:
    """The `meshd.io/opaque-ports` ranges; an invalid value counts as none (config reports it)."""
    text = annotations.get(OPAQUE_PORTS_ANNOTATION)
    if not text:
        return ()
    try:
        return parse_port_ranges(text)
    except ValueError:
        return ()


def select_protocol(port: PortInfo, annotations: Mapping[str, str]) -> Protocol:
    """The protocol of one Service port, by DESIGN.md's order."""
    if port.protocol.upper() == "UDP":
        return Protocol.UDP
    if port.app_protocol:
        return APP_PROTOCOLS.get(port.app_protocol.lower(), Protocol.DETECT)
    by_name = protocol_by_name(port.name) if port.name else None
    if by_name is not None:
        return by_name
    if any(lo <= port.port <= hi for lo, hi in opaque_ports(annotations)):
        return Protocol.TCP
    if port.port in SERVER_SPEAKS_FIRST:
        return Protocol.TCP
    return Protocol.DETECT


def detect(first: bytes) -> Protocol | None:
    """What the first bytes a client sent are: H2C (the HTTP/2 preface), HTTP1 (an HTTP/1 request line),
    TCP (anything else), or None while too few bytes have come to tell."""
    if not first:
        return None
    if first.startswith(H2_PREFACE):
        return Protocol.H2C
    if H2_PREFACE.startswith(first):
        return None
    if _REQUEST_LINE.match(first):
        return Protocol.HTTP1
    if len(first) < DETECT_LIMIT and b"\n" not in first and _PARTIAL_LINE.fullmatch(first):
        return None
    return Protocol.TCP

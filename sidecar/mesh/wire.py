"""The `meshd/1` protocol between a sidecar and another node's mesh gateway, inside mutual TLS (ALPN
`meshd/1`), pure:

    client: CONNECT <podIP>:<port>\\n            (one ASCII line, at most 256 bytes: a TCP connection to the pod)
        or: DATAGRAMS\\n                          (UDP flows to the gateway's pods: sidecar/mesh/datagrams.py)
    gateway: OK\\n   or   ERR <reason>\\n          (ERR: the gateway closes)
    then both ways: frames of a 4-byte big-endian length and that many bytes; a length of 0 is the end of
    that direction's stream (a half-close: TLS in asyncio has none, so the FIN travels as a frame).

`meshd/2` (offered first; a gateway or sidecar of `meshd/1` only is still spoken with) is `meshd/1` with one more
frame: once both directions of a CONNECT's stream have ended and the pod's connection is closed cleanly, the
gateway sends END (length 0xFFFFFFFF) and waits for the next CONNECT on the same TLS connection, so a sidecar
reuses it as a pool keeps HTTP connections (a TLS handshake costs milliseconds of CPU; DATAGRAMS streams and
streams that end otherwise are never reused).
"""

from __future__ import annotations

import ipaddress

ALPN = "meshd/1"
ALPN_REUSE = "meshd/2"
ALPNS = [ALPN_REUSE, ALPN]  # offered in this order
MAX_LINE = 256
FIN = b"\x00\x00\x00\x00"
END = b"\xff\xff\xff\xff"  # meshd/2: the stream is over, the connection free for the next CONNECT
END_LENGTH = 0xFFFFFFFF
OK = b"OK\n"


DATAGRAMS = "DATAGRAMS"


def connect_line(address: str, port: int, *, protocol: str = "tcp") -> bytes:
    """The line for a TCP connection to address:port, or (protocol "udp") for the stream of UDP flows."""
    if protocol == "udp":
        return f"{DATAGRAMS}\n".encode()
    return f"CONNECT {host_port(address, port)}\n".encode()


def host_port(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{host}:{port}"


def parse_connect(line: bytes) -> tuple[str, int]:
    """(address, port) of a CONNECT line (without its newline); ValueError naming what is wrong."""
    protocol, address, port = parse_request(line)
    if protocol != "tcp":
        raise ValueError(f"expected CONNECT, got {DATAGRAMS!r}")
    return address, port


def parse_request(line: bytes) -> tuple[str, str, int]:
    """("tcp", address, port) of a CONNECT line, ("udp", "", 0) of a DATAGRAMS line (without its newline);
    ValueError naming what is wrong."""
    try:
        text = line.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ValueError("not ASCII") from None
    if text == DATAGRAMS:
        return "udp", "", 0
    verb, _, rest = text.partition(" ")
    if verb != "CONNECT":
        raise ValueError(f"expected CONNECT or {DATAGRAMS}, got {verb[:16]!r}")
    return ("tcp", *parse_target(rest))


def parse_target(target: str) -> tuple[str, int]:
    """(address, port) of "address:port" ("[v6]:port"); ValueError naming what is wrong."""
    host, sep, port = target.rpartition(":")
    host = host.strip("[]")
    try:
        address = str(ipaddress.ip_address(host))
        number = int(port)
    except ValueError:
        raise ValueError(f"not an IP address and port: {target[:64]!r}") from None
    if not sep or not 0 < number < 65536:
        raise ValueError(f"not an IP address and port: {target[:64]!r}")
    return address, number


def parse_answer(line: bytes) -> str | None:
    """None for OK, else the gateway's reason."""
    text = line.decode("utf-8", "replace").strip()
    if text == "OK":
        return None
    return text.removeprefix("ERR ").strip() or "refused"


def frame(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


class Deframer:
    """Frames back into a byte stream: payload bytes are passed on as they arrive (a large frame is never
    buffered whole); None marks the peer's end of stream, b"" an END (data chunks are never empty)."""

    __slots__ = ("head", "remaining")

    def __init__(self) -> None:
        self.head = b""  # a frame header split across reads
        self.remaining = 0  # payload bytes of the current frame still to come

    def feed(self, data: bytes) -> list[bytes | None]:
        out: list[bytes | None] = []
        size = len(data)
        if not self.remaining and not self.head and size > 4 and int.from_bytes(data[:4], "big") == size - 4:
            out.append(data[4:])  # the common case: one whole frame
            return out
        view = memoryview(data)
        i = 0
        while i < size:
            if self.remaining:
                take = min(self.remaining, size - i)
                out.append(bytes(view[i:i + take]))
                i += take
                self.remaining -= take
                continue
            need = 4 - len(self.head)
            self.head += bytes(view[i:i + need])
            i += need
            if len(self.head) < 4:
                break
            length = int.from_bytes(self.head, "big")
            self.head = b""
            if length == 0:
                out.append(None)
            elif length == END_LENGTH:
                out.append(b"")
            else:
                self.remaining = length
        return out

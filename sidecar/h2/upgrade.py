"""HTTP/1.1 `Upgrade: h2c` (RFC 7540 3.2) on an HTTP/2 port, the pure part: is the first request an upgrade
the codec can take, and what HTTP/2 request (stream 1) does it become."""

from __future__ import annotations

from dataclasses import dataclass

_DROP = frozenset({b"connection", b"upgrade", b"http2-settings", b"host", b"keep-alive", b"proxy-connection",
                   b"transfer-encoding", b"te", b"content-length"})  # fmt: skip
MAX_HEAD = 16 * 1024


@dataclass(frozen=True)
class Upgrade:
    headers: list[tuple[bytes, bytes]]  # the request as HTTP/2 headers (pseudo-headers first)
    settings: bytes  # the HTTP2-Settings header (base64url SETTINGS payload)
    rest: bytes  # bytes after the request head (the client's preface, once it has the 101)


def parse_upgrade(data: bytes) -> Upgrade | str | None:
    """`data` (the first bytes of a connection that did not start with the HTTP/2 preface): an Upgrade, an
    error text (answered with a 400 and a close), or None when the request head is not complete yet."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return "request head too large" if len(data) > MAX_HEAD else None
    lines = data[:end].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[2] != b"HTTP/1.1" or not parts[1].startswith(b"/"):
        return (
            "this port speaks HTTP/2 (h2c): send the HTTP/2 preface or an HTTP/1.1 request with Upgrade: h2c"
        )
    fields: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            return "malformed header line"
        fields.append((name.lower(), value.strip()))
    found = dict(fields)
    connection = {t.strip().lower() for t in found.get(b"connection", b"").split(b",")}
    upgrade = {t.strip().lower() for t in found.get(b"upgrade", b"").split(b",")}
    if b"h2c" not in upgrade or b"upgrade" not in connection or b"http2-settings" not in connection:
        return (
            "this port speaks HTTP/2 (h2c): send the HTTP/2 preface or an HTTP/1.1 request with Upgrade: h2c"
        )
    if b"http2-settings" not in found:
        return "Upgrade: h2c needs an HTTP2-Settings header"
    if found.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in found:
        return "an Upgrade: h2c request with a body is not supported: send the HTTP/2 preface instead"
    headers = [(b":method", parts[0]), (b":scheme", b"http"), (b":path", parts[1])]
    if b"host" in found:
        headers.append((b":authority", found[b"host"]))
    headers += [(n, v) for n, v in fields if n not in _DROP]
    return Upgrade(headers, found[b"http2-settings"], data[end + 4 :])

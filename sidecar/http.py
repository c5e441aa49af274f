"""HTTP/1.1 helpers for the proxy: hop-by-hop headers, forwarding headers, the sidecar's own responses."""

from __future__ import annotations

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)

REASONS = {
    400: b"Bad Request",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Payload Too Large",
    431: b"Request Header Fields Too Large",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}


_SIMPLE = frozenset({b"keep-alive", b"close", b"Keep-Alive", b"Close", b"upgrade", b"Upgrade"})


def connection_tokens(value: bytes) -> set[bytes]:
    """The header names a Connection header lists (they are hop-by-hop too)."""
    if value in _SIMPLE:
        return set()
    return {t.strip().lower() for t in value.split(b",") if t.strip()}


def error_response(status: int, message: str, *, close: bool, extra: bytes = b"") -> bytes:
    """A small text/plain response the sidecar itself sends (errors: 4xx, 502/503/504)."""
    body = (message + "\n").encode()
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n%s%s\r\n%s"
        % (
            status,
            REASONS.get(status, b"Error"),
            len(body),
            extra,
            b"connection: close\r\n" if close else b"",
            body,
        )
    )


def split_host(host: bytes) -> bytes:
    """'web.default:8080' -> 'web.default'; '[::1]:80' -> '::1'; lower-cased, trailing dot removed."""
    host = host.strip().lower()
    if host.startswith(b"["):
        end = host.find(b"]")
        return host[1:end] if end > 0 else host
    if host.count(b":") == 1:
        host = host.partition(b":")[0]
    return host.rstrip(b".")


def forwarded_for(ip: str) -> bytes:
    """The `for=` value of a Forwarded element (RFC 7239): IPv6 quoted in brackets."""
    return b'"[%s]"' % ip.encode() if ":" in ip else ip.encode()


def service_hostnames(name: str, namespace: str, zone: str = "cluster.local") -> list[bytes]:
    """The names a client may use in Host for a Service (as Kubernetes DNS search paths allow)."""
    return [
        f"{name}".encode(),
        f"{name}.{namespace}".encode(),
        f"{name}.{namespace}.svc".encode(),
        f"{name}.{namespace}.svc.{zone}".encode(),
    ]

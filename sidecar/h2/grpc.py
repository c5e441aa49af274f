"""gRPC over HTTP/2, the pure decisions: deadlines (`grpc-timeout`), statuses, and which failures retry."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..retry import may_retry

OK, CANCELLED, UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE = 0, 1, 2, 4, 12, 13, 14
STATUS_NAMES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
)  # fmt: skip
_TIMEOUT = re.compile(rb"\A([0-9]{1,8})([HMSmun])\Z")
_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}
# gRPC's mapping of HTTP statuses that come without a grpc-status (doc/http-grpc-status-mapping.md)
_FROM_HTTP = {400: INTERNAL, 401: 16, 403: 7, 404: UNIMPLEMENTED, 429: UNAVAILABLE, 502: UNAVAILABLE,
              503: UNAVAILABLE, 504: UNAVAILABLE}  # fmt: skip

# why an attempt on an endpoint failed (the retry rule's input)
CONNECT_FAILED = "connect"  # no connection: nothing reached the endpoint
REFUSED = "refused"  # RST_STREAM REFUSED_STREAM or past a GOAWAY's last stream: not processed
UNAVAILABLE_ONLY = "unavailable"  # a trailers-only gRPC response with grpc-status 14
GOING_AWAY = "going_away"  # trailers-only CANCELLED after the endpoint's GOAWAY: a call its shutdown dropped
HTTP_STATUS = "status"  # a non-gRPC response 502/503/504
LOST = "lost"  # the connection or stream broke after the request went out


def is_grpc(content_type: bytes | None) -> bool:
    return content_type is not None and content_type[:16].lower() == b"application/grpc"


def parse_grpc_timeout(value: bytes | None) -> float | None:
    """`grpc-timeout` (1 to 8 digits and a unit H M S m u n) in seconds; None if absent or malformed."""
    if not value:
        return None
    m = _TIMEOUT.match(value.strip())
    if m is None:
        return None
    return int(m.group(1)) * _UNITS[m.group(2)]


def deadline(service_timeout: float | None, grpc_timeout: float | None) -> float | None:
    """The call's timeout: the shorter of the Service's (`meshd.io/timeout`) and the client's deadline."""
    if service_timeout is None:
        return grpc_timeout
    if grpc_timeout is None:
        return service_timeout
    return min(service_timeout, grpc_timeout)


def grpc_status(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"grpc-status":
            try:
                return int(value)
            except ValueError:
                return UNKNOWN
    return None


def status_from_http(status: int) -> int:
    """The gRPC status a client derives from an HTTP status when no grpc-status came."""
    if status == 200:
        return UNKNOWN
    return _FROM_HTTP.get(status, UNKNOWN)


def encode_message(message: str) -> bytes:
    """grpc-message: UTF-8, percent-encoded outside printable ASCII (and '%' itself)."""
    out = bytearray()
    for b in message.encode():
        if 0x20 <= b <= 0x7E and b != 0x25:
            out.append(b)
        else:
            out += b"%%%02X" % b
    return bytes(out)


def may_retry_stream(
    *, failure: str, grpc: bool, method: bytes, status: int | None, replayable: bool
) -> bool:
    """May a failed attempt go to another endpoint? Only while the request can be sent again in full
    (`replayable`): always when the endpoint never processed it (connect failure, refused stream, a call its
    shutdown dropped), gRPC
    calls on UNAVAILABLE in a trailers-only response, other requests by the HTTP/1 rule (idempotent
    methods on 502/503/504 or a broken connection)."""
    if not replayable:
        return False
    if failure in (CONNECT_FAILED, REFUSED, GOING_AWAY):
        return True
    if grpc:
        return failure == UNAVAILABLE_ONLY
    return may_retry(method=method, status=status if failure == HTTP_STATUS else None, connect_failed=False,
                     replayable=True)  # fmt: skip


def trailers_only_failure(status: int | None, *, going_away: bool) -> str | None:
    """A trailers-only gRPC response that counts as a failed attempt: UNAVAILABLE; or CANCELLED from an
    endpoint that sent GOAWAY (grpc-core's server answers so the calls it had not started when it began to
    shut down); None: a response to pass on."""
    if status == UNAVAILABLE:
        return UNAVAILABLE_ONLY
    if status == CANCELLED and going_away:
        return GOING_AWAY
    return None

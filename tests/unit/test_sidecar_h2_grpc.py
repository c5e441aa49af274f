"""The gRPC rules the HTTP/2 codec runs (sidecar/h2/grpc.py): deadlines, statuses, retries."""

from __future__ import annotations

import pytest

from sidecar.h2 import grpc
from sidecar.h2.grpc import CONNECT_FAILED, GOING_AWAY, HTTP_STATUS, LOST, REFUSED, UNAVAILABLE_ONLY


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (b"1S", 1.0), (b"250m", 0.25), (b"3M", 180.0), (b"2H", 7200.0), (b"1500u", 0.0015),
        (b"99999999n", 0.099999999), (b"", None), (None, None), (b"1", None), (b"S", None),
        (b"123456789S", None), (b"1.5S", None), (b"-1S", None), (b"10s", None),
    ],
)  # fmt: skip
def test_grpc_timeout(value: bytes | None, seconds: float | None) -> None:
    result = grpc.parse_grpc_timeout(value)
    assert result == pytest.approx(seconds) if seconds is not None else result is None


@pytest.mark.parametrize(
    ("service", "client", "deadline"),
    [(10.0, None, 10.0), (None, 0.5, 0.5), (10.0, 0.5, 0.5), (0.3, 5.0, 0.3), (None, None, None)],
)
def test_the_shorter_deadline_wins(
    service: float | None, client: float | None, deadline: float | None
) -> None:
    assert grpc.deadline(service, client) == deadline


@pytest.mark.parametrize(
    ("failure", "is_grpc", "method", "status", "replayable", "retry"),
    [
        (CONNECT_FAILED, True, b"POST", None, True, True),  # nothing reached the endpoint
        (REFUSED, True, b"POST", None, True, True),  # REFUSED_STREAM / past GOAWAY: not processed
        (GOING_AWAY, True, b"POST", 200, True, True),  # dropped by a server shutting down
        (GOING_AWAY, True, b"POST", 200, False, False),
        (UNAVAILABLE_ONLY, True, b"POST", 200, True, True),  # trailers-only grpc-status 14
        (LOST, True, b"POST", None, True, False),  # may have run: a gRPC call is not known idempotent
        (CONNECT_FAILED, True, b"POST", None, False, False),  # the body is no longer at hand
        (UNAVAILABLE_ONLY, True, b"POST", 200, False, False),
        (HTTP_STATUS, False, b"GET", 503, True, True),  # other HTTP/2: the HTTP/1 rule (retry.may_retry)
        (HTTP_STATUS, False, b"POST", 503, True, False),
        (HTTP_STATUS, False, b"GET", 500, True, False),
        (LOST, False, b"GET", None, True, True),
        (LOST, False, b"POST", None, True, False),
        (REFUSED, False, b"POST", None, True, True),
    ],
)  # fmt: skip
def test_which_failures_retry(
    failure: str, is_grpc: bool, method: bytes, status: int | None, replayable: bool, retry: bool
) -> None:
    assert (
        grpc.may_retry_stream(
            failure=failure, grpc=is_grpc, method=method, status=status, replayable=replayable
        )
        is retry
    )


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([(b":status", b"200"), (b"grpc-status", b"14")], 14),
        ([(b"grpc-message", b"x"), (b"grpc-status", b"0")], 0),
        ([(b":status", b"200")], None),
        ([(b"grpc-status", b"nope")], grpc.UNKNOWN),
    ],
)
def test_grpc_status(headers: list[tuple[bytes, bytes]], status: int | None) -> None:
    assert grpc.grpc_status(headers) == status


@pytest.mark.parametrize(
    ("http", "code"),
    [
        (200, 2),
        (400, 13),
        (401, 16),
        (403, 7),
        (404, 12),
        (429, 14),
        (502, 14),
        (503, 14),
        (504, 14),
        (500, 2),
    ],
)
def test_status_from_http(http: int, code: int) -> None:
    assert grpc.status_from_http(http) == code


@pytest.mark.parametrize(
    ("message", "encoded"),
    [
        ("no ready endpoints", b"no ready endpoints"),
        ("100% done", b"100%25 done"),
        ("caf\u00e9\n", b"caf%C3%A9%0A"),
    ],
)
def test_grpc_message_is_percent_encoded(message: str, encoded: bytes) -> None:
    assert grpc.encode_message(message) == encoded


@pytest.mark.parametrize(
    ("content_type", "is_grpc"),
    [(b"application/grpc", True), (b"application/grpc+proto", True), (b"Application/GRPC", True),
     (b"application/json", False), (None, False), (b"application/grp", False)],
)  # fmt: skip
def test_is_grpc(content_type: bytes | None, is_grpc: bool) -> None:
    assert grpc.is_grpc(content_type) is is_grpc


@pytest.mark.parametrize(
    ("status", "going_away", "failure"),
    [
        (14, False, UNAVAILABLE_ONLY), (14, True, UNAVAILABLE_ONLY), (1, True, GOING_AWAY),
        (1, False, None),  # the application cancelled: its answer
        (0, True, None), (5, True, None), (None, True, None),
    ],
)  # fmt: skip
def test_trailers_only_failures(status: int | None, going_away: bool, failure: str | None) -> None:
    assert grpc.trailers_only_failure(status, going_away=going_away) == failure

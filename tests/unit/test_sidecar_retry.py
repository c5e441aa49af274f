"""Retry decisions and the retry budget (Linkerd's: ~20% extra load, at least 10 retries/s)."""

import pytest

from sidecar.config import config_from_annotations, parse_duration
from sidecar.retry import RetryBudget, may_retry


@pytest.mark.parametrize(
    ("method", "status", "connect_failed", "replayable", "expected"),
    [
        (b"POST", None, True, True, True),  # nothing was sent: any method
        (b"GET", None, True, True, True),
        (b"GET", 503, False, True, True),
        (b"GET", 502, False, True, True),
        (b"PUT", 504, False, True, True),
        (b"DELETE", None, False, True, True),  # connection broke before a response
        (b"GET", 500, False, True, False),
        (b"GET", 503, False, False, False),  # body streamed away: cannot replay
        (b"POST", 503, False, True, False),
        (b"PATCH", None, False, True, False),
        (b"POST", None, True, False, False),
    ],
)
def test_may_retry(method, status, connect_failed, replayable, expected):
    assert (
        may_retry(method=method, status=status, connect_failed=connect_failed, replayable=replayable)
        is expected
    )


def test_budget_reserve_allows_min_per_second_without_traffic():
    b = RetryBudget(ratio=0.2, min_per_sec=10, ttl=10)
    assert sum(b.withdraw(0.0) for _ in range(150)) == 100  # 10/s over the 10 s window


def test_budget_ratio_of_requests():
    b = RetryBudget(ratio=0.2, min_per_sec=0, ttl=10)
    for _ in range(1000):
        b.deposit(1.0)
    assert sum(b.withdraw(1.0) for _ in range(500)) == 200


def test_budget_window_slides():
    b = RetryBudget(ratio=0.0, min_per_sec=1, ttl=10)
    assert sum(b.withdraw(0.5) for _ in range(20)) == 10
    assert not b.withdraw(5.0)
    assert b.withdraw(10.6)  # the withdrawals of the first second left the window
    assert sum(b.withdraw(30.0) for _ in range(20)) == 10  # a long idle gap clears everything


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5.0), ("250ms", 0.25), ("1m", 60.0), ("2", 2.0), ("1.5s", 1.5), ("0", None), ("none", None)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_annotations():
    c = config_from_annotations(
        {"meshd.io/lb-algorithm": "ewma", "meshd.io/timeout": "250ms", "meshd.io/retries": "3"}
    )
    assert (c.algorithm, c.timeout, c.retries, c.problems) == ("ewma", 0.25, 3, ())
    d = config_from_annotations({})
    assert (d.algorithm, d.timeout, d.retries) == ("round_robin", 10.0, 2)
    bad = config_from_annotations(
        {"meshd.io/lb-algorithm": "fastest", "meshd.io/timeout": "soon", "meshd.io/retries": "-1"}
    )
    assert (bad.algorithm, bad.timeout, bad.retries) == ("round_robin", 10.0, 2)
    assert len(bad.problems) == 3 and "meshd.io/timeout" in bad.problems[1]

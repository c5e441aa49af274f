"""Passive outlier ejection: a pure state machine driven by outcomes and a clock."""

import pytest

from sidecar.outlier import OutlierDetector, OutlierPolicy


def fail(d: OutlierDetector, key: str, n: int, *, now: float, total: int = 4) -> list[bool]:
    return [d.record(key, False, now, total=total) for _ in range(n)]


def test_five_consecutive_failures_eject():
    d = OutlierDetector()
    assert fail(d, "a", 5, now=0.0) == [False, False, False, False, True]
    assert d.is_ejected("a", 1.0) and d.ejected_count(1.0) == 1
    assert not d.is_ejected("a", 30.0)  # 30 s the first time
    assert d.next_expiry(1.0) == 30.0


def test_a_success_resets_the_count():
    d = OutlierDetector()
    fail(d, "a", 4, now=0.0)
    d.record("a", True, 0.0, total=4)
    assert fail(d, "a", 4, now=0.0) == [False] * 4
    assert not d.is_ejected("a", 0.0)


@pytest.mark.parametrize(("times", "duration"), [(1, 30.0), (2, 60.0), (3, 90.0), (20, 300.0)])
def test_ejection_grows_with_each_ejection_and_is_capped(times, duration):
    d = OutlierDetector(OutlierPolicy(consecutive=1, base_ejection=30.0, max_ejection=300.0))
    now = 0.0
    for _ in range(times):
        assert d.record("a", False, now, total=2)
        end = d.next_expiry(now)
        assert end is not None
        last = end - now
        now = end
    assert last == duration


@pytest.mark.parametrize(("total", "max_ejected"), [(1, 0), (2, 1), (3, 1), (4, 2), (10, 5)])
def test_never_more_than_half_ejected(total, max_ejected):
    d = OutlierDetector(OutlierPolicy(consecutive=1))
    for i in range(total):
        d.record(str(i), False, 0.0, total=total)
    assert d.ejected_count(0.0) == max_ejected


def test_failures_while_ejected_do_not_extend_it_and_forget_drops_state():
    d = OutlierDetector(OutlierPolicy(consecutive=2))
    fail(d, "a", 2, now=0.0)
    fail(d, "a", 10, now=1.0)
    assert d.next_expiry(1.0) == 30.0
    d.forget("a")
    assert not d.is_ejected("a", 1.0)


def test_uneject_ends_an_ejection_at_once_but_the_next_one_lasts_longer():
    d = OutlierDetector()
    fail(d, "a", 5, now=0.0)
    fail(d, "a", 3, now=1.0)  # (counted while ejected: nothing)
    d.uneject("a")
    assert not d.is_ejected("a", 1.0) and d.next_expiry(1.0) is None
    assert fail(d, "a", 5, now=2.0) == [False, False, False, False, True]  # the count started over
    assert d.next_expiry(2.0) == 62.0  # the second ejection: 60 s
    d.uneject("b")  # unknown: nothing to do
    assert d.ejected_count(2.0) == 1

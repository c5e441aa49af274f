"""Balancers: round robin, P2C least-request, P2C peak-EWMA, with injected RNG and clock."""

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.balancer import DEFAULT_RTT, LeastRequest, PeakEwma, RoundRobin, Target, make_balancer


def targets(loads: list[int]) -> list[Target]:
    out = []
    for load in loads:
        t = Target()
        t.in_flight = load
        out.append(t)
    return out


@pytest.mark.parametrize(
    ("name", "cls"),
    [("round_robin", RoundRobin), ("least_request", LeastRequest), ("ewma", PeakEwma), ("x", RoundRobin)],
)
def test_make_balancer_by_annotation_value(name, cls):
    assert type(make_balancer(name, rng=random.Random(1))) is cls


@pytest.mark.parametrize("cls", [RoundRobin, LeastRequest, PeakEwma])
def test_empty_and_single(cls):
    b = cls(rng=random.Random(0))
    assert b.pick([]) is None
    [only] = targets([3])
    assert b.pick([only]) is only
    assert b.pick([only], {only}) is only  # nothing else left: the excluded one rather than nothing


@given(n=st.integers(1, 20), rounds=st.integers(1, 5), seed=st.integers(0, 1000))
def test_round_robin_is_even(n, rounds, seed):
    ts = targets([0] * n)
    b = RoundRobin(rng=random.Random(seed))
    counts = Counter(id(b.pick(ts)) for _ in range(n * rounds))
    assert len(counts) == n and set(counts.values()) == {rounds}


@given(loads=st.lists(st.integers(0, 50), min_size=2, max_size=20), seed=st.integers(0, 10_000))
def test_least_request_never_picks_the_unique_busiest(loads, seed):
    ts = targets(loads)
    b = LeastRequest(rng=random.Random(seed))
    for _ in range(20):
        picked = b.pick(ts)
        assert picked is not None
        if loads.count(max(loads)) == 1:
            assert picked.in_flight != max(loads)


@given(
    loads=st.lists(st.integers(0, 5), min_size=2, max_size=10), seed=st.integers(0, 10_000), data=st.data()
)
def test_p2c_respects_exclusions(loads, seed, data):
    ts = targets(loads)
    excluded = data.draw(st.sets(st.sampled_from(range(len(ts))), max_size=len(ts) - 1))
    ex = {ts[i] for i in excluded}
    for cls in (LeastRequest, PeakEwma, RoundRobin):
        b = cls(rng=random.Random(seed))
        for _ in range(10):
            assert b.pick(ts, ex) not in ex


def test_least_request_prefers_idle_endpoint_over_many_picks():
    ts = targets([10, 0, 10])
    b = LeastRequest(rng=random.Random(42))
    counts = Counter(id(b.pick(ts)) for _ in range(300))
    assert counts[id(ts[1])] > 150  # chosen whenever it is one of the two drawn (2/3 of the time)


def test_peak_ewma_takes_peaks_at_once_and_decays_towards_faster_samples():
    t = Target(now=0.0)
    assert t.rtt == DEFAULT_RTT
    t.observe_rtt(0.5, now=1.0)
    assert t.rtt == 0.5  # a slower sample replaces the estimate at once
    t.observe_rtt(0.01, now=1.001)
    assert 0.49 < t.rtt <= 0.5  # a fast sample right after barely moves it
    t.observe_rtt(0.01, now=100.0)
    assert t.rtt < 0.02  # ... but after a long time it converges
    assert t.cost(now=100.0) == pytest.approx(t.rtt)
    t.in_flight = 3
    assert t.cost(now=100.0) == pytest.approx(4 * t.rtt)


def test_peak_ewma_prefers_the_faster_endpoint():
    clock = [10.0]
    fast, slow = Target(now=0.0), Target(now=0.0)
    fast.observe_rtt(0.001, now=10.0)
    slow.observe_rtt(0.200, now=10.0)
    b = PeakEwma(rng=random.Random(7), clock=lambda: clock[0])
    assert all(b.pick([fast, slow]) is fast for _ in range(50))

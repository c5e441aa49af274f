"""The etcd client's pure decisions (meshd.store.etcdfailover): what a member's answer means, how long a member
gets, whether to go round the members again, and whether the store is up for this agent."""

from __future__ import annotations

import pytest

from meshd.store.etcdfailover import (
    MIN_ATTEMPT,
    ROUND_PAUSE,
    Outcome,
    Reach,
    attempt_timeout,
    classify,
    reach_of,
    round_pause,
    Verdict,
    verdict,
)

A, R, N, S, F = Outcome.ANSWERED, Outcome.REFUSED, Outcome.NO_LEADER, Outcome.STALLED, Outcome.FAILED


@pytest.mark.parametrize("status, message, expected", [
    (200, "", A),
    (503, "etcdserver: no leader", N),  # a member cut off from the others, or electing
    (503, "etcdserver: request timed out", S),
    (503, "etcdserver: request timed out, possibly due to previous leader failure", S),
    (503, "etcdserver: leader changed", S),
    (500, "context deadline exceeded", S),  # the gateway's own deadline on a write that could not commit
    (429, "etcdserver: too many requests", S),
    (503, "etcdserver: not capable", S),  # a member still starting
    (400, "etcdserver: too many operations in txn request", R),
    (400, "etcdserver: request is too large", R),
    (400, "etcdserver: mvcc: required revision has been compacted", R),
    (429, "etcdserver: mvcc: database space exceeded", R),  # every member has the NOSPACE alarm
    (500, "some internal error", F),
    (502, "", F),
])
def test_what_an_answer_means(status: int, message: str, expected: Outcome) -> None:
    assert classify(status, message) is expected


@pytest.mark.parametrize("total, left, members, expected", [
    (5.0, 5.0, 1, 5.0),  # one member: all of it
    (5.0, 5.0, 3, 5 / 3),  # another member listed: a share
    (5.0, 3.3, 3, 5 / 3),
    (5.0, 1.6, 3, 1.6),  # never more than is left
    (1.0, 1.0, 3, MIN_ATTEMPT),  # a short total (the leader election's): still half a second to answer
    (1.0, 0.3, 3, 0.3),
    (5.0, -0.1, 3, 0.0),  # nothing left: no attempt
    (5.0, 5.0, 0, 5.0),
])
def test_the_time_one_member_gets(total: float, left: float, members: int, expected: float) -> None:
    assert attempt_timeout(total, left, members) == pytest.approx(expected)


@pytest.mark.parametrize("outcomes, left, expected", [
    ([N, N, N], 4.0, ROUND_PAUSE),  # every member electing: again, soon
    ([F, N, F], 4.0, ROUND_PAUSE),  # one down, one without a leader: again
    ([S], 4.0, ROUND_PAUSE),
    ([F, F, F], 4.0, None),  # etcd is not there: no point waiting
    ([], 4.0, None),
    ([N, N], 2 * ROUND_PAUSE, None),  # no time for a pause and a try
])
def test_whether_to_go_round_again(outcomes: list[Outcome], left: float, expected: float | None) -> None:
    assert round_pause(outcomes, left) == expected


@pytest.mark.parametrize("outcomes, expected", [
    ([N, A], Reach.LEADER),
    ([F, F, A], Reach.LEADER),
    ([N, F, F], Reach.LEADERLESS),  # this agent reaches only a member cut off from the others
    ([S], Reach.LEADERLESS),
    ([F, F], Reach.SILENT),
    ([], Reach.SILENT),
])
def test_what_a_look_found(outcomes: list[Outcome], expected: Reach) -> None:
    assert reach_of(outcomes) is expected


def test_a_member_with_a_leader_is_the_store_up_and_forgets_a_leaderless_spell() -> None:
    assert verdict(Reach.LEADER, since=10.0, started=20.0, now=20.1, grace=4.0) == Verdict(True, None, "")


def test_no_member_answering_is_the_store_lost_at_once() -> None:
    found = verdict(Reach.SILENT, since=None, started=20.0, now=22.0, grace=4.0, detail="m0: refused")
    assert (found.up, found.leaderless_since, found.reason) == (False, None, "m0: refused")


@pytest.mark.parametrize("since, started, now, up, kept_since", [
    (None, 20.0, 20.1, True, 20.0),  # the first look without a leader: an election, as far as one can tell
    (20.0, 23.0, 23.1, True, 20.0),  # still within the grace
    (20.0, 24.0, 24.1, False, 20.0),  # longer than the grace: lost
    (None, 20.0, 24.5, False, 20.0),  # one look that itself waited longer than the grace
    (22.0, 20.0, 24.5, False, 20.0),  # an earlier start counts from there
])
def test_members_without_a_leader_are_an_outage_only_past_the_grace(since: float | None, started: float,
                                                                    now: float, up: bool, kept_since: float) -> None:
    found = verdict(Reach.LEADERLESS, since=since, started=started, now=now, grace=4.0, detail="m0: no leader")
    assert (found.up, found.leaderless_since) == (up, kept_since)
    assert (found.reason == "") == up
    if not up:
        assert "raft leader for" in found.reason and "minority" in found.reason and "m0: no leader" in found.reason

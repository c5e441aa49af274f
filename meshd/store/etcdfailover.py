"""What an etcd member's answer means to meshd's etcd client, and what to do next: pure decisions, table-tested
(tests/unit/test_store_etcd_failover.py), behind the I/O of meshd.store.etcdclient and meshd.store.etcd.

Every request carries etcd's require-leader metadata (`hasleader: true`, as etcd's own client sends with
WithRequireLeader and kube-apiserver's watches do; the JSON gateway forwards it from the header
`Grpc-Metadata-hasleader`): a member without a raft leader (cut off from the others, etcd's minority, or while
etcd elects one) refuses it at once with 503 "etcdserver: no leader", even a serializable read, and cancels a
watch it serves once it has had no leader for three election timeouts. Before a cut-off member notices (an
election timeout or two), it still forwards writes and linearizable reads to a leader it cannot reach, and they
hang: so while another member is listed, one member gets only a share of the request's time.

- `classify`: an HTTP answer as an Outcome (answered, refused by etcd itself, no leader, stalled, failed).
- `attempt_timeout`: the time one member gets (a share of the total when another member is listed).
- `round_pause`: after every member failed, whether to go round again (etcd is there but has no leader yet, or
  could not commit: an election) and after what pause, within the total; never when no member answered.
- `verdict`: whether the store is up for this agent, from what a probe found and since when no member had a
  leader: an election shorter than the grace is not an outage; a member alone without a leader for longer is.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

REQUIRE_LEADER = {"Grpc-Metadata-hasleader": "true"}  # etcd's rpctypes.MetadataRequireLeaderKey/HasLeader
MIN_ATTEMPT = 0.5  # seconds: one member's share of a request is never less (a real write takes milliseconds)
ROUND_PAUSE = 0.2  # seconds between two rounds over the members while etcd has no leader (its elections: ~1 s)


class Outcome(enum.Enum):
    ANSWERED = "answered"
    REFUSED = "refused"  # etcd refused the request itself (too large, too many operations): every member would
    NO_LEADER = "no leader"  # the member answers but has no raft leader: cut off from the others, or electing
    STALLED = "stalled"  # the member took it but did not answer in time, or etcd said it could not commit in time
    FAILED = "failed"  # no answer (connection refused or reset, TLS, the attempt's time up) or another error


# etcd's messages (etcdserver/api/v3rpc/rpctypes) that mean "the raft cluster could not serve this now"
_STALLED = ("request timed out", "leader changed", "context deadline exceeded", "proposal dropped",
            "too many requests", "not capable")


def classify(status: int, message: str) -> Outcome:
    """An HTTP answer of etcd's JSON gateway (status, its error message) as an Outcome."""
    text = message.lower()
    if status == 200:
        return Outcome.ANSWERED
    if "no leader" in text:
        return Outcome.NO_LEADER
    if any(s in text for s in _STALLED):
        return Outcome.STALLED
    if status < 500:
        return Outcome.REFUSED
    return Outcome.FAILED


def attempt_timeout(total: float, left: float, members: int) -> float:
    """The time one member gets, of `left` seconds of a request given `total`: its share of the total (at least
    MIN_ATTEMPT; all of it with one member), never more than is left. A member that took a write and hangs
    (it forwards to a leader that is gone, until it notices: one or two election timeouts) costs that share,
    and the next member, or the next round, is tried within the total."""
    return max(min(left, max(total / max(members, 1), MIN_ATTEMPT)), 0.0)


def round_pause(outcomes: Sequence[Outcome], left: float) -> float | None:
    """After a round in which no member answered: the pause before the next round, or None to give up. Only
    when a member said it has no leader or could not commit (etcd is there, electing) and the pause and some
    time to try fit in what is left; when every member failed otherwise (down, unreachable), at once."""
    if not any(o in (Outcome.NO_LEADER, Outcome.STALLED) for o in outcomes):
        return None
    return ROUND_PAUSE if left > 2 * ROUND_PAUSE else None


class Reach(enum.Enum):
    LEADER = "leader"  # a member with a raft leader answered
    LEADERLESS = "leaderless"  # members answered, none has a leader (or could commit)
    SILENT = "silent"  # no member answered


def reach_of(outcomes: Sequence[Outcome]) -> Reach:
    if Outcome.ANSWERED in outcomes:
        return Reach.LEADER
    if any(o in (Outcome.NO_LEADER, Outcome.STALLED) for o in outcomes):
        return Reach.LEADERLESS
    return Reach.SILENT


@dataclass(frozen=True)
class Verdict:
    up: bool
    leaderless_since: float | None  # when this agent first found no member with a leader (None: one has one)
    reason: str  # why it is down ("" when up)


def verdict(reach: Reach, *, since: float | None, started: float, now: float, grace: float,
            detail: str = "") -> Verdict:
    """Whether the shared store is up for this agent after a look (a probe or a request) that began at
    `started` and found `reach`; `since`: when an earlier look first found no member with a leader."""
    if reach is Reach.LEADER:
        return Verdict(True, None, "")
    if reach is Reach.SILENT:
        return Verdict(False, None, detail or "no etcd member answered")
    since = started if since is None else min(since, started)
    if now - since < grace:
        return Verdict(True, since, "")  # an election, as far as this agent can tell yet
    return Verdict(False, since, f"no etcd member this agent reaches has had a raft leader for {now - since:.1f}s "
                                 f"(members that answer without one are cut off from the others, etcd's minority; "
                                 f"or etcd lost its quorum)" + (f": {detail}" if detail else ""))


__all__ = ["MIN_ATTEMPT", "Outcome", "REQUIRE_LEADER", "ROUND_PAUSE", "Reach", "Verdict", "attempt_timeout",
           "classify", "reach_of", "round_pause", "verdict"]

"""The controller's pure decisions: crash-loop backoff, ReplicaSet scaling, Deployment rollout steps."""

from __future__ import annotations

import pytest

from meshd.controller.backoff import Backoff, BackoffPolicy, should_restart
from meshd.controller.plan import (
    PodView,
    ReplicaSetView,
    creation_batch,
    next_batch,
    plan_replicaset,
    plan_rollout,
    resolve_surge,
    rollout_complete,
)
from meshd.controller.pod import finished_to_keep
from meshd.controller.records import RESTARTED_AT_ANNOTATION, keep_live_fields
from meshd.driver.base import ObservedContainer

POLICY = BackoffPolicy(initial=10, maximum=300, reset_after=600)


def test_first_restart_is_immediate_then_doubling_to_the_cap():
    backoff, now, delays = Backoff().first_start(now=0), 1.0, []
    for _ in range(8):
        delay = backoff.delay(POLICY, now=now)
        delays.append(delay)
        now += delay + 1
        backoff = backoff.started(POLICY, now=now)
    assert delays == [0, 10, 20, 40, 80, 160, 300, 300]


def test_backoff_is_forgotten_after_ten_minutes_of_clean_running():
    backoff = Backoff(restarts=5, last_start=0)
    assert backoff.delay(POLICY, now=599) == 160
    assert backoff.delay(POLICY, now=600) == 0
    assert backoff.started(POLICY, now=600).restarts == 1


@pytest.mark.parametrize(("policy", "code", "restart"), [
    ("Always", 0, True), ("Always", 1, True), ("OnFailure", 0, False), ("OnFailure", 2, True),
    ("Never", 1, False),
])
def test_restart_policy(policy, code, restart):
    assert should_restart(policy, code) is restart


def found(state, code=None, restarts=0, finished=None):
    labels = {"io.meshd.container": "main", "io.meshd.restart-count": str(restarts)}
    return ObservedContainer(id=f"{state}-{code}-{restarts}", labels=labels, state=state, exit_code=code,
                             finished_at=finished)


@pytest.mark.parametrize(("policy", "instances", "kept"), [
    ("Never", [], None),
    ("Never", [found("exited", 0)], "exited-0-0"),  # a finished pod stays finished: not run again
    ("Never", [found("exited", 3)], "exited-3-0"),
    ("OnFailure", [found("exited", 0)], "exited-0-0"),
    ("OnFailure", [found("exited", 1)], None),  # failed while the agent was away: restarted
    ("Always", [found("exited", 0)], None),
    ("Never", [found("created")], None),  # created but never started: start it
    ("Never", [found("exited", 1, restarts=0, finished=5.0), found("exited", 0, restarts=1, finished=1.0)],
     "exited-0-1"),  # the latest instance is the one that counts
])
def test_adoption_keeps_a_finished_container_its_policy_would_not_restart(policy, instances, kept):
    keep = finished_to_keep(policy, instances)
    assert (keep.id if keep else None) == kept


def pod(name, *, created=0.0, ready=True, scheduled=True, restarts=0, node=""):
    return PodView(name, created, scheduled=scheduled, ready=ready, available=ready, restarts=restarts, node=node)


@pytest.mark.parametrize(("replicas", "pods", "create", "delete"), [
    (3, [], 3, ()),
    (3, [pod("a"), pod("b"), pod("c")], 0, ()),
    (1, [pod("a", created=1), pod("b", created=2), pod("c", created=3)], 0, ("c", "b")),
    (2, [pod("ok"), pod("sick", ready=False), pod("new", created=9)], 0, ("sick",)),
    (2, [pod("ok"), pod("pending", scheduled=False), pod("x")], 0, ("pending",)),
    (1, [pod("calm"), pod("flaky", restarts=4)], 0, ("flaky",)),
    # in a cluster: from the node running the most of them first, so 2+2+2 scaled to 3 keeps one per node
    (3, [pod(f"{n}{i}", created=i, node=n) for n in ("a", "b", "c") for i in (1, 2)], 0, ("a2", "b2", "c2")),
    (2, [pod("a1", node="a"), pod("a2", node="a", created=5), pod("b1", node="b", created=9)], 0, ("a2",)),
    (2, [pod("a1", node="a"), pod("a2", node="a"), pod("b1", node="b", ready=False)], 0, ("b1",)),
])
def test_replicaset_scaling_picks_the_least_useful_pods(replicas, pods, create, delete):
    assert plan_replicaset(replicas, pods) == (create, delete)


@pytest.mark.parametrize(("value", "replicas", "up", "expected"), [
    ("25%", 3, True, 1), ("25%", 3, False, 0), (2, 10, True, 2), ("50%", 5, True, 3), ("50%", 5, False, 2),
])
def test_surge_and_unavailable_resolve_like_kubernetes(value, replicas, up, expected):
    assert resolve_surge(value, replicas, round_up=up) == expected


def simulate(replicas, *, surge, unavailable, strategy="RollingUpdate", steps=30):
    """Runs plan_rollout until done; pods appear at once and become available one step later."""
    state = {"new": [0, 0, 0], "old": [replicas, replicas, replicas]}
    history = []
    for _ in range(steps):
        new, old = ReplicaSetView("new", 2, *state["new"]), ReplicaSetView("old", 1, *state["old"])
        if rollout_complete(replicas=replicas, new=new, old=[old]):
            return history
        changes = plan_rollout(replicas=replicas, strategy=strategy, max_surge=surge, max_unavailable=unavailable,
                               new=new, old=[old])
        for name, count in changes.items():
            state[name][0] = count
        for name in state:
            desired, pods, available = state[name]
            state[name] = [desired, desired, min(pods, desired)]
        history.append((state["new"][2] + state["old"][2], state["new"][1] + state["old"][1]))
    raise AssertionError(f"rollout did not finish: {state}")


def test_rolling_update_with_no_unavailability_never_drops_below_the_replica_count():
    history = simulate(3, surge=1, unavailable=0)
    assert all(available >= 3 for available, _ in history)
    assert all(pods <= 4 for _, pods in history)


def test_rolling_update_with_defaults_keeps_within_surge_and_unavailability():
    history = simulate(4, surge="25%", unavailable="25%")
    assert all(available >= 3 for available, _ in history)
    assert all(pods <= 5 for _, pods in history)


def test_recreate_stops_every_old_pod_before_starting_new_ones():
    new, old = ReplicaSetView("new", 2, 0, 0, 0), ReplicaSetView("old", 1, 3, 3, 3)
    assert plan_rollout(replicas=3, strategy="Recreate", max_surge=1, max_unavailable=0, new=new,
                        old=[old]) == {"old": 0}
    old_gone = ReplicaSetView("old", 1, 0, 0, 0)
    assert plan_rollout(replicas=3, strategy="Recreate", max_surge=1, max_unavailable=0, new=new,
                        old=[old_gone]) == {"new": 3}


def _doc(annotations=None, replicas=1):
    template = {"metadata": {"labels": {"app": "web"}, **({"annotations": annotations} if annotations else {})}}
    return {"kind": "Deployment", "spec": {**({"replicas": replicas} if replicas is not None else {}),
                                           "template": template}}


@pytest.mark.parametrize(("live", "applied", "carried"), [
    (_doc(), _doc(), None),  # never restarted
    (_doc({RESTARTED_AT_ANNOTATION: "t1"}), _doc(), _doc({RESTARTED_AT_ANNOTATION: "t1"})),
    (_doc({RESTARTED_AT_ANNOTATION: "t1"}), _doc({"team": "a"}), _doc({"team": "a", RESTARTED_AT_ANNOTATION: "t1"})),
    (_doc({RESTARTED_AT_ANNOTATION: "t1"}), _doc({RESTARTED_AT_ANNOTATION: "t2"}), None),  # the manifest's own
    (_doc(replicas=5), _doc(replicas=None), _doc(replicas=5)),  # scaled, the manifest names no replicas: kept
    (_doc(replicas=5), _doc(replicas=2), None),  # the manifest's own count wins
    (_doc({RESTARTED_AT_ANNOTATION: "t1"}, replicas=5), _doc(replicas=None),
     _doc({RESTARTED_AT_ANNOTATION: "t1"}, replicas=5)),
])
def test_apply_keeps_what_scale_and_rollout_restart_set(live, applied, carried):
    assert keep_live_fields(live, applied) == carried


@pytest.mark.parametrize(("missing", "batch", "room", "create"), [
    (10**9, 1, 220, 1),       # slow start: the first pass creates one pod
    (10**9, 64, 220, 64),     # then at most the batch
    (10**9, 64, 10, 10),      # and never past the node's room for pod objects
    (3, 64, 220, 3),          # never more than is missing
    (5, 4, 0, 0),             # a full node creates nothing
    (0, 8, 220, 0),
])
def test_creation_batch(missing, batch, room, create):
    assert creation_batch(missing, batch=batch, room=room) == create


@pytest.mark.parametrize(("batch", "created", "missing", "after"), [
    (1, 1, 10**9, 2), (2, 2, 10**9, 4), (32, 32, 10**9, 64), (64, 64, 10**9, 64),  # doubles to the cap
    (8, 3, 10**9, 8),   # the node was full: the batch waits where it was
    (8, 3, 3, 1),       # everything created: the next burst starts slow again
])
def test_next_batch(batch, created, missing, after):
    assert next_batch(batch, created=created, missing=missing) == after

"""meshd.controller.garbage: which objects an owner's orphaning delete releases, and what each keeps, for every
owner kind meshd has (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob)."""

from __future__ import annotations

import pytest

from meshd.controller.garbage import Dependent, OwnerReference, orphan, refusal


def ref(kind: str, name: str, uid: str = "") -> OwnerReference:
    return OwnerReference(kind, name, uid)


CANDIDATES = [
    Dependent("ReplicaSet", "default", "web-abc", (ref("Deployment", "web", "d1"),)),
    Dependent("Pod", "default", "web-abc-x", (ref("ReplicaSet", "web-abc", "r1"),)),
    Dependent("Pod", "default", "bare-rs-y", (ref("ReplicaSet", "bare-rs", "r2"),)),
    Dependent("Pod", "default", "db-0", (ref("StatefulSet", "db", "s1"),)),
    Dependent("Pod", "default", "db-1", (ref("StatefulSet", "db", "s1"),)),
    Dependent("Pod", "default", "agent-q", (ref("DaemonSet", "agent", "ds1"),)),
    Dependent("Pod", "default", "once-z", (ref("Job", "once", "j1"),)),
    Dependent("Job", "default", "nightly-2900", (ref("CronJob", "nightly", "c1"),)),
    Dependent("Pod", "other", "db-0", (ref("StatefulSet", "db", "s9"),)),  # another namespace's namesake
    Dependent("Pod", "default", "shared", (ref("ReplicaSet", "bare-rs", "r2"), ref("Job", "once", "j1"))),
    Dependent("Pod", "default", "standalone"),
]


@pytest.mark.parametrize(("owner", "expected"), [
    (ref("Deployment", "web", "d1"), [("ReplicaSet", "web-abc", ())]),  # its pods keep their ReplicaSet
    (ref("ReplicaSet", "web-abc", "r1"), [("Pod", "web-abc-x", ())]),
    (ref("ReplicaSet", "bare-rs", "r2"), [("Pod", "bare-rs-y", ()), ("Pod", "shared", (ref("Job", "once", "j1"),))]),
    (ref("StatefulSet", "db", "s1"), [("Pod", "db-0", ()), ("Pod", "db-1", ())]),
    (ref("DaemonSet", "agent", "ds1"), [("Pod", "agent-q", ())]),
    (ref("Job", "once", "j1"), [("Pod", "once-z", ()), ("Pod", "shared", (ref("ReplicaSet", "bare-rs", "r2"),))]),
    (ref("CronJob", "nightly", "c1"), [("Job", "nightly-2900", ())]),
    (ref("StatefulSet", "db", "other-uid"), []),  # a namesake made again: not its dependents
    (ref("StatefulSet", "db"), [("Pod", "db-0", ()), ("Pod", "db-1", ())]),  # no uid known: by name
    (ref("Deployment", "nope", "d9"), []),
])
def test_an_owners_dependents_lose_only_the_reference_to_it(owner, expected):
    plan = orphan(owner, "default", CANDIDATES)
    assert [(o.dependent.kind, o.dependent.name, o.keeps) for o in plan] == expected


def test_a_cluster_scoped_owner_releases_dependents_in_every_namespace():
    plan = orphan(ref("StatefulSet", "db"), "", CANDIDATES)
    assert [(o.dependent.namespace, o.dependent.name) for o in plan] == [
        ("default", "db-0"), ("default", "db-1"), ("other", "db-0")]


@pytest.mark.parametrize(("releasable", "expected"), [
    (frozenset({"ReplicaSet", "Pod", "Job"}), None),
    (frozenset({"ReplicaSet", "Job"}), 'meshd cannot keep the Pods of StatefulSet "db" running without it here'),
])
def test_a_plan_with_a_dependent_meshd_cannot_release_is_refused(releasable, expected):
    owner = ref("StatefulSet", "db", "s1")
    problem = refusal(owner, orphan(owner, "default", CANDIDATES), releasable=releasable)
    assert problem == expected or (problem is not None and expected is not None and problem.startswith(expected))


def test_nothing_to_release_is_never_refused():
    assert refusal(ref("Deployment", "x"), [], releasable=frozenset()) is None

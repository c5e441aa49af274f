"""The API server's deletion decisions (meshd.controller.deletion): what a DELETE does under each
propagationPolicy, when foregroundDeletion comes off, when a Terminating object goes, what writes it takes."""

from __future__ import annotations

import pytest

from meshd.controller import deletion
from meshd.controller.cascade import released_pod_object
from meshd.controller.deletion import FOREGROUND, DeletePlan

NOW = "2026-12-05T15:00:00Z"
MARKED = {"deletionTimestamp": NOW}


@pytest.mark.parametrize("kind, meta, policy, plan", [
    ("Deployment", {}, "Background", DeletePlan("now")),
    ("Deployment", {}, "Orphan", DeletePlan("now")),
    ("Deployment", {}, "Foreground", DeletePlan("mark", (FOREGROUND,))),
    ("ReplicaSet", {}, "Foreground", DeletePlan("mark", (FOREGROUND,))),
    ("CronJob", {}, "Foreground", DeletePlan("mark", (FOREGROUND,))),
    ("ConfigMap", {}, "Foreground", DeletePlan("now")),  # nothing depends on it: nothing to wait for
    ("ConfigMap", {"finalizers": ["example.com/hold"]}, "Background", DeletePlan("mark", ("example.com/hold",))),
    ("Deployment", {"finalizers": ["example.com/hold"]}, "Orphan", DeletePlan("mark", ("example.com/hold",))),
    ("Deployment", {"finalizers": ["example.com/hold"]}, "Foreground",
     DeletePlan("mark", ("example.com/hold", FOREGROUND))),
    # a second DELETE of a Terminating object: only what its policy adds
    ("Deployment", {**MARKED, "finalizers": [FOREGROUND]}, "Foreground", DeletePlan("pending", (FOREGROUND,))),
    ("Deployment", {**MARKED, "finalizers": ["a/b"]}, "Background", DeletePlan("pending", ("a/b",))),
    ("Deployment", {**MARKED, "finalizers": ["a/b"]}, "Foreground", DeletePlan("mark", ("a/b", FOREGROUND))),
])
def test_plan_delete(kind, meta, policy, plan):
    assert deletion.plan_delete(kind, meta, policy) == plan


def test_an_unknown_policy_is_refused_by_name():
    with pytest.raises(ValueError, match="Background, Foreground or Orphan, not 'Sideways'"):
        deletion.plan_delete("Deployment", {}, "Sideways")


@pytest.mark.parametrize("meta, left, after", [
    ({**MARKED, "finalizers": [FOREGROUND]}, 0, ()),
    ({**MARKED, "finalizers": [FOREGROUND]}, 2, None),  # dependents left: it stays
    ({**MARKED, "finalizers": ["a/b", FOREGROUND]}, 0, ("a/b",)),
    ({**MARKED, "finalizers": ["a/b"]}, 0, None),  # not the garbage collector's to take off
    ({"finalizers": [FOREGROUND]}, 0, None),  # not being deleted
])
def test_without_foreground(meta, left, after):
    assert deletion.without_foreground(meta, left) == after


@pytest.mark.parametrize("meta, done", [
    (MARKED, True), ({**MARKED, "finalizers": []}, True), ({**MARKED, "finalizers": ["a/b"]}, False), ({}, False),
])
def test_finished(meta, done):
    assert deletion.finished(meta) is done


LIVE = {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 2},
        "metadata": {"name": "d", **MARKED, "finalizers": ["a/b", FOREGROUND], "labels": {"app": "d"}},
        "status": {"replicas": 2}}


def _with(meta: dict | None = None, **top) -> dict:
    return {**LIVE, **top, "metadata": {**LIVE["metadata"], **(meta or {})}}


@pytest.mark.parametrize("new, field", [
    (_with({"labels": {"app": "d", "tier": "x"}}), None),
    (_with({"finalizers": [FOREGROUND]}), None),  # a finalizer taken off
    (_with({"finalizers": []}), None),
    (_with(status={"replicas": 1}), None),  # the status is the server's: not the client's change
    (_with({"finalizers": ["a/b", FOREGROUND, "c/d"]}), "metadata.finalizers"),
    (_with(spec={"replicas": 3}), "spec"),
    (_with(data={"a": "1"}), "data"),
])
def test_update_refusal_of_a_terminating_object(new, field):
    refusal = deletion.update_refusal(LIVE, new)
    assert (refusal[0] if refusal else None) == field


def test_the_new_finalizer_is_named_as_the_api_server_names_it():
    field, message = deletion.update_refusal(LIVE, _with({"finalizers": ["a/b", "c/d"]}))
    assert message == ('Forbidden: no new finalizers can be added if the object is being deleted, found new '
                       'finalizers []string{"c/d"}')


def test_an_object_not_being_deleted_takes_every_write():
    live = {**LIVE, "metadata": {"name": "d"}}
    assert deletion.update_refusal(live, {**live, "spec": {"replicas": 9}}) is None


def test_edited_metadata_takes_labels_annotations_finalizers_only():
    stored = {"name": "d", "uid": "u", "resourceVersion": "7", **MARKED, "finalizers": ["a/b"],
              "labels": {"app": "d"}, "annotations": {"x": "1"}, "managedFields": [{"manager": "kubectl"}]}
    new = {"name": "d", "uid": "other", "resourceVersion": "7", "deletionTimestamp": "1999-01-01T00:00:00Z",
           "finalizers": [], "labels": {"app": "d", "tier": "t"}}
    out = deletion.edited_metadata(stored, new)
    assert out == {"name": "d", "uid": "u", "resourceVersion": "7", **MARKED, "labels": {"app": "d", "tier": "t"},
                   "managedFields": [{"manager": "kubectl"}]}


def test_marked_keeps_a_first_deletion_timestamp():
    assert deletion.marked({"name": "d"}, (FOREGROUND,), NOW) == {
        "name": "d", "deletionTimestamp": NOW, "deletionGracePeriodSeconds": 0, "finalizers": [FOREGROUND]}
    assert deletion.marked({"name": "d", **MARKED}, ("a/b",), "2030-01-01T00:00:00Z")["deletionTimestamp"] == NOW


@pytest.mark.parametrize("refs, kept", [
    ([{"kind": "ReplicaSet", "name": "rs", "uid": "1", "controller": True}], None),
    ([{"kind": "ReplicaSet", "name": "rs", "uid": "1", "controller": True}, {"kind": "ConfigMap", "name": "c"}],
     [{"kind": "ConfigMap", "name": "c"}]),
])
def test_an_orphaned_pod_object_loses_its_controllers_reference_only(refs, kept):
    stored = {"kind": "Pod", "metadata": {"name": "p", "resourceVersion": "5", "ownerReferences": refs},
              "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}
    out = released_pod_object(stored)
    assert out["metadata"].get("ownerReferences") == kept
    assert (out["spec"], out["status"], out["metadata"]["resourceVersion"]) == ({"nodeName": "n1"},
                                                                                {"phase": "Running"}, "5")
    assert stored["metadata"]["ownerReferences"] == refs  # not changed in place


@pytest.mark.parametrize(("options", "spec_grace", "graceful"), [
    ({}, None, True),  # the default 30 s
    ({}, 30, True),
    ({}, 0, False),  # a pod that asks for none
    ({"gracePeriodSeconds": 0}, 30, False),  # --grace-period=0 --force
    ({"gracePeriodSeconds": 5}, 0, True),  # the request's grace wins
    ({"gracePeriodSeconds": "x"}, 30, True),  # unreadable: the safe side
])
def test_graceful_pod_delete(options, spec_grace, graceful):
    assert deletion.graceful_pod_delete(options, spec_grace) is graceful


def test_a_graceful_delete_marks_a_pod_no_finalizer_holds():
    assert deletion.plan_delete("Pod", {}, "Background", graceful=True) == deletion.DeletePlan("mark", ())
    assert deletion.plan_delete("Pod", {}, "Background") == deletion.DeletePlan("now")


@pytest.mark.parametrize("meta, owner, after", [
    ({"name": "rs"}, None, {"name": "rs"}),  # (its owner went)
    ({"name": "rs"}, {"name": "d"}, {"name": "rs"}),
    ({"name": "rs"}, {**MARKED, "finalizers": ["example.com/hold"]}, {"name": "rs"}),  # held, not foreground
    ({"name": "rs"}, {**MARKED, "finalizers": [FOREGROUND]},
     {"name": "rs", **MARKED, "deletionGracePeriodSeconds": 0, "finalizers": [FOREGROUND]}),
    ({"name": "rs", "finalizers": ["example.com/mine"]}, {**MARKED, "finalizers": [FOREGROUND, "x"]},
     {"name": "rs", **MARKED, "deletionGracePeriodSeconds": 0, "finalizers": ["example.com/mine", FOREGROUND]}),
])
def test_a_dependent_of_an_owner_deleted_in_the_foreground_is_terminating_too(meta, owner, after):
    assert deletion.foreground_dependent(meta, owner) == after

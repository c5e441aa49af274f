"""The one-node controller's small pure decisions, moved out of its loop: which ReplicaSet rows to write, which
revision an undo goes back to, what a user's Pod asks of its pod, the labels a pod's containers carry, what an apply
does with an object and what it refuses, and the replica counts the plans read."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from meshd.controller.adoption import LABEL_CREATED
from meshd.controller.applychecks import check_immutable, check_pod_name_free, check_replicaset_name_free, in_namespace
from meshd.controller.applyplan import apply_action
from meshd.controller.pod import PodIdentity
from meshd.controller.records import ObjectRecord, ReplicaSetRecord, owned_replicaset_manifest
from meshd.controller.rollouts import undo_target
from meshd.controller.rsstore import replicaset_writes, signature
from meshd.controller.views import deployment_status, pod_view, replicaset_view
from meshd.controller.workers import BarePod, bare_pod_action, sandbox_labels
from meshd.driver.base import LABEL_OWNER_KIND, LABEL_POD, LABEL_REPLICASET
from meshd.manifests import ManifestError, load_objects
from meshd.store import Create, Delete, Update

DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
          "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                   "template": {"metadata": {"labels": {"app": "web"}},
                                "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}


def load(manifest: dict) -> object:
    (obj,) = load_objects([manifest], source="t").objects
    return obj


def record(hash_: str, revision: int, replicas: int = 1, *, owner_kind: str = "Deployment") -> ReplicaSetRecord:
    deployment = load(DEPLOY)
    rs = load(owned_replicaset_manifest(deployment, hash_, revision))  # type: ignore[arg-type]
    return ReplicaSetRecord(rs, owner_kind, "web", hash_, revision, replicas, 0.0, f"uid-{hash_}")  # type: ignore[arg-type]


# --- the ReplicaSet rows --------------------------------------------------------------------------------------

A, B = ("default", "web-a"), ("default", "web-b")


@pytest.mark.parametrize("records, persisted, owner, bare, stored, writes", [
    ({A: 1}, {}, "d1", (), (), [("Create", A)]),  # new: created
    ({A: 1}, {A: 1}, "d1", (), (A,), []),  # as written: nothing
    ({A: 2}, {A: 1}, "d1", (), (A,), [("Update", A)]),  # scaled: updated
    ({}, {A: 1}, "d1", (), (A,), [("Delete", A)]),  # gone: its row goes
    ({}, {A: 1}, "d1", (A,), (A,), []),  # orphaned into a bare ReplicaSet: the user's row now
    ({}, {A: 1}, "d1", (), (), []),  # gone and not stored: nothing to delete
    ({A: 1, B: 3}, {A: 1}, "d1", (), (A,), [("Create", B)]),
])
def test_only_the_replicaset_rows_that_changed_are_written(records, persisted, owner, bare, stored, writes):
    recs = {A: record("a", 1), B: record("b", 2)}
    for key, replicas in records.items():
        recs[key].replicas = replicas
    current = {k: recs[k] for k in records}
    written = {k: (recs[k].rs, recs[k].revision, n, recs[k].uid, owner) for k, n in persisted.items()}
    operations, signatures = replicaset_writes(current, written, owner_uid=lambda rs: owner,
                                               bare=lambda k: k in bare, stored=lambda k: k in stored)
    assert [(type(o).__name__, (o.namespace, o.name) if isinstance(o, Delete) else
             (o.obj["metadata"]["namespace"], o.obj["metadata"]["name"])) for o in operations] == writes
    assert signatures == {k: signature(rs, owner) for k, rs in current.items()}


def test_a_deleted_deployments_replicaset_keeps_the_owner_uid_it_was_written_with():
    rs = record("a", 1)
    operations, signatures = replicaset_writes({A: rs}, {A: signature(rs, "old-uid")}, owner_uid=lambda _: None,
                                               bare=lambda _: False, stored=lambda _: True)
    assert operations == [] and signatures[A][4] == "old-uid"
    rs.replicas = 0
    (update,) = replicaset_writes({A: rs}, {A: signature(record("a", 1), "old-uid")}, owner_uid=lambda _: None,
                                  bare=lambda _: False, stored=lambda _: True)[0]
    assert isinstance(update, Update) and update.obj["metadata"]["ownerReferences"][0]["uid"] == "old-uid"


def test_a_bare_replicasets_record_is_never_written_as_an_owned_row():
    operations, signatures = replicaset_writes({A: record("a", 1, owner_kind="ReplicaSet")}, {},
                                               owner_uid=lambda _: "x", bare=lambda _: True, stored=lambda _: False)
    assert operations == [] and signatures == {}
    assert isinstance(replicaset_writes({A: record("a", 1)}, {}, owner_uid=lambda _: "x", bare=lambda _: False,
                                        stored=lambda _: False)[0][0], Create)


# --- rollout undo ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("revisions, to_revision, wanted", [
    ([1, 2, 3], None, 2),  # the one before the current
    ([3, 1, 2], None, 2),  # in any order
    ([1, 2, 3], 1, 1),
    ([1, 2, 3], 3, 3),
    ([1, 2, 3], 0, 2),  # 0: as none (kubectl's default)
    ([1], None, ValueError("no rollout history found for deployment web")),
    ([1, 2], 7, ValueError("unable to find specified revision 7 in history")),
    ([], None, KeyError('deployments "web" not found')),
])
def test_undo_goes_back_to_the_revision_asked_or_the_one_before(revisions, to_revision, wanted):
    owned = [record(f"h{r}", r) for r in revisions]
    if isinstance(wanted, Exception):
        with pytest.raises(type(wanted)) as raised:
            undo_target(owned, to_revision, "web")
        assert str(wanted) in str(raised.value)
    else:
        assert undo_target(owned, to_revision, "web").revision == wanted


# --- a user's bare Pod ----------------------------------------------------------------------------------------

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
       "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
OTHER = {**POD, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}


@pytest.mark.parametrize("running, terminating, wanted, action", [
    (None, False, POD, BarePod.CREATE),
    (POD, False, POD, BarePod.KEEP),
    (POD, False, OTHER, BarePod.REPLACE),  # pods are immutable: a changed spec replaces the pod
    (POD, True, OTHER, BarePod.KEEP),  # stops already: the next pass makes the new one
    (POD, True, POD, BarePod.KEEP),
])
def test_a_bare_pod_is_made_kept_or_replaced(running, terminating, wanted, action):
    spec = load(running).spec if running else None  # type: ignore[attr-defined]
    assert bare_pod_action(spec, terminating, load(wanted).spec) is action  # type: ignore[attr-defined]


@pytest.mark.parametrize("identity", [
    PodIdentity("default", "web-x", "Deployment", "web", "web-abc", "abc"),
    PodIdentity("default", "p", "Pod", "p"),
    PodIdentity("ns", "db-0", "StatefulSet", "db"),
])
def test_a_pods_containers_carry_whose_pod_it_is(identity):
    labels = sandbox_labels(identity, agent_id="a1", created=12.5)
    assert labels[LABEL_POD] == identity.name and labels[LABEL_OWNER_KIND] == identity.owner_kind
    assert labels[LABEL_REPLICASET] == identity.replicaset and labels[LABEL_CREATED] == "12.500"
    assert all(isinstance(v, str) for v in labels.values())


# --- apply ----------------------------------------------------------------------------------------------------

def test_an_apply_creates_configures_or_leaves_unchanged():
    pod, other = load(POD), load(OTHER)
    managed = load({**POD, "metadata": {**POD["metadata"], "managedFields": [{"manager": "kubectl"}]}})
    assert [apply_action(None, pod), apply_action(pod, pod), apply_action(pod, other), apply_action(pod, managed)] \
        == ["created", "unchanged", "configured", "configured"]


@pytest.mark.parametrize("named, chosen, result", [
    (None, None, "default"), (None, "dev", "dev"), ("dev", "dev", "dev"), ("dev", None, "dev"),
    ("prod", "dev", ManifestError),
])
def test_kubectl_n_puts_objects_in_its_namespace_and_refuses_another(named, chosen, result):
    meta = {"name": "p"} | ({"namespace": named} if named else {})
    obj = load({**POD, "metadata": meta})
    if result is ManifestError:
        with pytest.raises(ManifestError, match='"prod" does not match the namespace "dev"'):
            in_namespace(obj, chosen, "t")
    else:
        assert in_namespace(obj, chosen, "t").metadata.namespace == result  # type: ignore[attr-defined]


def test_a_pod_or_replicaset_may_not_take_a_controllers_name():
    pod = load(POD)
    check_pod_name_free(pod, None, "t")  # type: ignore[arg-type]
    check_pod_name_free(pod, PodIdentity("default", "p", "Pod", "p"), "t")  # type: ignore[arg-type]
    with pytest.raises(ManifestError, match='is run by ReplicaSet "web-abc": change deployment "web" instead'):
        check_pod_name_free(pod, PodIdentity("default", "p", "Deployment", "web", "web-abc", "abc"), "t")  # type: ignore[arg-type]
    rs = record("a", 1)
    check_replicaset_name_free(rs.rs, None, "t")
    check_replicaset_name_free(rs.rs, record("a", 1, owner_kind="ReplicaSet"), "t")
    with pytest.raises(ManifestError, match='is owned by Deployment "web"'):
        check_replicaset_name_free(rs.rs, rs, "t")


def test_a_jobs_template_and_completions_are_immutable():
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "default"},
           "spec": {"completions": 2, "template": {"spec": {"restartPolicy": "Never",
                                                            "containers": [{"name": "c", "image": "busybox"}]}}}}
    check_immutable(load(job), load(job), "t")  # type: ignore[arg-type]
    check_immutable(load(POD), load(OTHER), "t")  # type: ignore[arg-type]  (a Pod: the pod's replacement)
    with pytest.raises(ManifestError, match="field is immutable"):
        check_immutable(load(job), load({**job, "spec": {**job["spec"], "completions": 3}}), "t")  # type: ignore[arg-type]


# --- the counts the plans read --------------------------------------------------------------------------------

@dataclass
class FakePod:
    name: str
    ready: bool
    ready_since: float | None
    created: float = 0.0
    scheduled: bool = True
    restarts: int = 0

    def available(self, min_ready_seconds: float, now: float) -> bool:
        return self.ready and self.ready_since is not None and now - self.ready_since >= min_ready_seconds


def test_replicaset_and_deployment_counts_come_from_their_pods():
    old, new = record("old", 1, 2), record("new", 2, 1)
    pods = {old.name: [FakePod("o1", True, 0.0), FakePod("o2", False, None)], new.name: [FakePod("n1", True, 9.5)]}
    view = replicaset_view(old, pods[old.name], now=10.0)
    assert (view.replicas, view.pods, view.available) == (2, 2, 1)
    assert pod_view(pods[new.name][0], new, now=10.0).node == ""
    deployment = load(DEPLOY)
    status = deployment_status(ObjectRecord(deployment, 1, 0.0, "d"), [old, new],  # type: ignore[arg-type]
                               lambda rs: pods[rs.name], now=10.0)
    assert (status.desired, status.current, status.ready, status.available) == (3, 3, 2, 2)
    assert status.new is None or status.updated == len(pods[status.new.name])

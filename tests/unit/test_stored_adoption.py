"""meshd.cluster.storedadoption: after a restart on one node every stored Pod is a pod to keep (adopted with its
containers, or started again under its name without), unless it was being deleted or ended with nothing left;
containers without an object are left to their labels; and a pod is admitted once its object is stored
(meshd.controller.admission.object_stored)."""

from __future__ import annotations

from typing import Any

import pytest

from meshd.controller.admission import object_stored
from meshd.cluster.binding import identity_of
from meshd.cluster.storedadoption import Adoption, AdoptionPlan, adoption_plan, stored_pod_action
from meshd.controller.workers import sandbox_labels
from meshd.driver.base import LABEL_OWNER, LABEL_OWNER_KIND, LABEL_REPLICASET, LABEL_TEMPLATE_HASH


def pod(name: str = "web-abc-x", *, phase: str = "Running", deleting: bool = False,
        owner: tuple[str, str] | None = ("ReplicaSet", "web-abc"), labels: dict[str, str] | None = None
        ) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "uid": f"uid-{name}",
                            "labels": labels if labels is not None else {"pod-template-hash": "abc"}}
    if owner is not None:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "uid": "o", "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = "2026-12-05T18:00:00Z"
    return {"kind": "Pod", "metadata": meta, "spec": {"nodeName": "n"}, "status": {"phase": phase}}


@pytest.mark.parametrize(("obj", "containers", "action"), [
    (pod(), True, Adoption.ADOPT),  # runs: taken over
    (pod(phase="Pending"), False, Adoption.START),  # stored while Pending, no container yet: started again
    (pod(), False, Adoption.START),  # its containers went while the agent was away: started again, same name
    (pod(deleting=True), True, Adoption.DROP),  # it was stopping: it stops
    (pod(deleting=True, phase="Pending"), False, Adoption.DROP),
    (pod(phase="Succeeded"), True, Adoption.ADOPT),  # finished, its containers kept: adopted finished
    (pod(phase="Succeeded"), False, Adoption.DROP),  # finished and nothing left: never run again
    (pod(phase="Failed"), False, Adoption.DROP),
    (pod(owner=None), False, Adoption.START),  # a user's bare Pod: it is started again
])
def test_what_becomes_of_a_stored_pod(obj: dict[str, Any], containers: bool, action: Adoption) -> None:
    assert stored_pod_action(obj, containers=containers) is action


@pytest.mark.parametrize(("obj", "labels"), [
    (pod(), {LABEL_OWNER_KIND: "ReplicaSet", LABEL_OWNER: "web-abc", LABEL_REPLICASET: "web-abc",
             LABEL_TEMPLATE_HASH: "abc"}),
    (pod("db-0", owner=("StatefulSet", "db"), labels={"controller-revision-hash": "db-123"}),
     {LABEL_OWNER_KIND: "StatefulSet", LABEL_OWNER: "db", LABEL_REPLICASET: "", LABEL_TEMPLATE_HASH: "db-123"}),
    (pod("pi-7", owner=("Job", "pi"), labels={}),
     {LABEL_OWNER_KIND: "Job", LABEL_OWNER: "pi", LABEL_REPLICASET: "", LABEL_TEMPLATE_HASH: ""}),
    (pod("solo", owner=None),  # bare, or orphaned (its containers may still carry the old owner's labels)
     {LABEL_OWNER_KIND: "Pod", LABEL_OWNER: "solo", LABEL_REPLICASET: "", LABEL_TEMPLATE_HASH: ""}),
])
def test_a_stored_pods_owner_reads_as_its_containers_labels(obj: dict[str, Any], labels: dict[str, str]) -> None:
    """What the owners' adoption reads (the labels a container of the pod carries), from the object's identity."""
    found = sandbox_labels(identity_of(obj), agent_id="a", created=0.0)
    assert {k: found[k] for k in labels} == labels


def test_the_plan_keeps_every_stored_pod_and_leaves_the_rest_to_labels() -> None:
    stored = {("default", "b"): pod("b"), ("default", "a"): pod("a", phase="Pending"),
              ("default", "c"): pod("c", deleting=True)}
    observed = {("default", "b"): 2, ("default", "c"): 2, ("default", "z"): 1, ("default", "gone"): 0}
    assert adoption_plan(stored, observed) == AdoptionPlan(
        stored=((("default", "a"), Adoption.START), (("default", "b"), Adoption.ADOPT),
                (("default", "c"), Adoption.DROP)),
        by_labels=(("default", "z"),))


def test_without_objects_every_container_is_left_to_its_labels() -> None:
    assert adoption_plan({}, {("ns", "p"): 1}) == AdoptionPlan(by_labels=(("ns", "p"),))


@pytest.mark.parametrize(("obj", "uid", "bare", "admitted"), [
    (None, "u1", False, False),  # not written yet: the pod waits
    (None, "u1", True, False),
    ({"metadata": {"uid": "u1"}}, "u1", False, True),  # its own object: it may start
    ({"metadata": {"uid": "old"}}, "u1", False, False),  # an older pod's of that name (a StatefulSet's): it waits
    ({"metadata": {"uid": "users"}}, "u1", True, True),  # a user's Pod: the user's object is the pod's
])
def test_a_pod_is_admitted_once_its_object_is_stored(obj: dict[str, Any] | None, uid: str, bare: bool,
                                                     admitted: bool) -> None:
    assert object_stored(obj, uid=uid, bare=bare) is admitted

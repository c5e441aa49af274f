"""meshd.cluster.podobjects: a standalone agent's pods as Pod objects of its store: a controller's pod gets its
object (bound to this node, owned by its ReplicaSet) with its worker's status, the status is written again when it
changed (without what probes said), the object goes with its worker; a user's bare Pod keeps its object and only
gets its status."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from meshd.cluster.podobjects import PodObjects, ended_status, stored_status, with_status
from meshd.controller.pod import PodIdentity, pod_uid_of
from meshd.manifests import load_objects
from meshd.store import ObjectStore

NOW = 1_780_000_000.0
(POD,) = load_objects([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                        "spec": {"containers": [{"name": "web", "image": "nginx"}]}}]).objects


def worker(name: str, *, replicaset: str = "web-abc", phase: str = "Running") -> SimpleNamespace:
    identity = PodIdentity("default", name, "ReplicaSet" if replicaset else "Pod", replicaset or name, replicaset,
                           "abc" if replicaset else "")
    return SimpleNamespace(identity=identity, namespace="default", name=name, spec=POD.spec,  # type: ignore[attr-defined]
                           labels={"app": "web"}, annotations={}, created=NOW - 10, terminating=False, ready=True,
                           ready_since=NOW - 5, phase=phase, uid=pod_uid_of("default", name, NOW - 10))


def render(w: Any, node: str) -> dict[str, Any]:
    return {"status": {"phase": w.phase, "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "web", "probes": {"readiness": "ok"}}]}}


def setup() -> tuple[SimpleNamespace, PodObjects]:
    watchers: list[Any] = []
    kicks: list[int] = []
    controller = SimpleNamespace(store=ObjectStore(), pods={}, objects={}, replicasets={}, kicks=kicks,
                                 watch=watchers.append, notify=lambda *key: [w(*key) for w in watchers],
                                 kick=lambda: kicks.append(1))
    return controller, PodObjects(controller, "node-1", render, lambda: NOW)  # type: ignore[arg-type]


async def test_a_controllers_pod_is_written_updated_and_deleted_with_its_worker():
    controller, objects = setup()
    controller.pods[("default", "web-abc-1")] = worker("web-abc-1")
    await objects.flush()
    assert controller.kicks == [1]  # a new pod's object is stored: the controller admits it
    obj = controller.store.get("Pod", "default", "web-abc-1")
    assert obj["spec"]["nodeName"] == "node-1" and obj["spec"]["containers"][0]["image"] == "nginx"
    assert obj["metadata"]["ownerReferences"][0]["name"] == "web-abc" and obj["metadata"]["uid"]
    assert obj["status"]["phase"] == "Running" and "probes" not in obj["status"]["containerStatuses"][0]
    assert obj["status"]["conditions"][0]["lastTransitionTime"] == "2026-05-28T20:26:35Z"
    version = controller.store.resource_version
    await objects.flush()  # nothing changed: nothing written
    assert controller.store.resource_version == version
    controller.pods[("default", "web-abc-1")].phase = "Failed"
    controller.notify("Pod", "default", "web-abc-1")
    await objects.flush()
    assert controller.store.get("Pod", "default", "web-abc-1")["status"]["phase"] == "Failed"
    controller.pods[("default", "web-abc-1")].terminating = True
    controller.notify("Pod", "default", "web-abc-1")
    await objects.flush()
    assert controller.store.get("Pod", "default", "web-abc-1")["metadata"]["deletionTimestamp"]
    del controller.pods[("default", "web-abc-1")]
    await objects.flush()
    assert controller.store.get("Pod", "default", "web-abc-1") is None
    assert controller.kicks == [1]  # (only a new object kicks it)


async def test_a_users_pod_gets_its_status_and_keeps_its_object():
    controller, objects = setup()
    await controller.store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                                   "spec": {"containers": [{"name": "web", "image": "nginx"}]}})
    controller.pods[("default", "p")] = worker("p", replicaset="")
    await objects.flush()
    obj = controller.store.get("Pod", "default", "p")
    assert obj["status"]["phase"] == "Running" and obj["metadata"]["generation"] == 1
    assert "nodeName" not in obj["spec"]  # the user's spec, as written
    del controller.pods[("default", "p")]
    await objects.flush()
    assert controller.store.get("Pod", "default", "p") is not None
    controller.pods[("default", "q")] = worker("q", replicaset="")  # its object deleted by the user: none made
    await objects.flush()
    assert controller.store.get("Pod", "default", "q") is None


def test_status_is_written_only_when_it_changed():
    obj = {"kind": "Pod", "metadata": {"name": "p"}, "status": {"phase": "Running"}}
    assert with_status(obj, {"phase": "Running"}, terminating_since=None) is None
    assert with_status(obj, {"phase": "Failed"}, terminating_since=None)["status"] == {"phase": "Failed"}
    stopping = with_status(obj, {"phase": "Running"}, terminating_since="2026-01-01T00:00:00Z")
    assert stopping["metadata"]["deletionTimestamp"] == "2026-01-01T00:00:00Z"
    assert with_status(stopping, {"phase": "Running"}, terminating_since="2026-01-01T00:00:09Z") is None
    assert stored_status({"containerStatuses": [{"name": "a", "probes": {}}]}) == {"containerStatuses": [{"name": "a"}]}


async def test_a_pod_of_the_same_name_replaces_the_older_ones_object():
    controller, objects = setup()
    controller.pods[("default", "web-0")] = worker("web-0")
    await objects.flush()
    old_uid = controller.store.get("Pod", "default", "web-0")["metadata"]["uid"]
    replacement = worker("web-0")
    replacement.created, replacement.uid = NOW, pod_uid_of("default", "web-0", NOW)  # a StatefulSet's web-0 again
    controller.pods[("default", "web-0")] = replacement
    controller.notify("Pod", "default", "web-0")
    await objects.flush()
    new_uid = controller.store.get("Pod", "default", "web-0")["metadata"]["uid"]
    assert new_uid != old_uid and new_uid == pod_uid_of("default", "web-0", NOW)


def test_the_new_pods_objects_are_written_first():
    """Their pods wait for them (admission); an older pod's object that goes before a new one stays before it."""
    from meshd.cluster.podobjects import admitting_first
    from meshd.store import Create, Delete, Update

    def obj(name: str) -> dict[str, Any]:
        return {"kind": "Pod", "metadata": {"namespace": "default", "name": name}}

    update_a, delete_b, create_b, create_c = Update(obj("a")), Delete("Pod", "default", "b", 3), \
        Create(obj("b")), Create(obj("c"))
    delete_d = Delete("Pod", "default", "d", 4)
    assert admitting_first([update_a, delete_b, create_b, create_c, delete_d]) == (
        [delete_b, create_b, create_c], [update_a, delete_d])


def _exited(*codes: int | None) -> dict:
    return {"phase": "Running", "containerStatuses": [{"state": {"terminated": {"exitCode": c}}} for c in codes]}


@pytest.mark.parametrize("status, phase", [
    (_exited(0), "Succeeded"),
    (_exited(0, 0), "Succeeded"),
    (_exited(0, 137), "Failed"),
    (_exited(143), "Failed"),
    (_exited(None), "Failed"),
    ({"phase": "Running", "containerStatuses": []}, "Failed"),  # nothing ran
    ({**_exited(137), "phase": "Succeeded"}, "Succeeded"),  # it had ended already
])
def test_a_stopped_pods_last_status_is_terminal(status, phase):
    assert ended_status(status)["phase"] == phase

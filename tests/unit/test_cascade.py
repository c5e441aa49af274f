"""meshd.controller.cascade: a Deployment's ReplicaSet as the bare one an orphaning delete leaves, and how it
and managedFields are stored."""

from __future__ import annotations

from meshd.controller.cascade import orphaned_manifest
from meshd.controller.persist import desired_object, load_records, managed_fields_changed, owned_replicaset
from meshd.controller.records import ReplicaSetRecord, owned_replicaset_manifest
from meshd.manifests import load_objects
from meshd.store import ObjectStore

DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
          "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                   "template": {"metadata": {"labels": {"app": "web"}},
                                "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}


def test_an_orphaned_replicaset_keeps_its_labels_template_revision_and_count_but_no_owner():
    (deployment,) = load_objects([DEPLOY], source="t").objects
    (rs,) = load_objects([owned_replicaset_manifest(deployment, "abc12", 4)], source="t").objects
    record = ReplicaSetRecord(rs, "Deployment", "web", "abc12", 4, 3, 0.0, "uid-1")
    manifest = orphaned_manifest(record)
    assert manifest["metadata"]["name"] == "web-abc12" and "ownerReferences" not in manifest["metadata"]
    assert manifest["metadata"]["labels"] == {"app": "web", "pod-template-hash": "abc12"}
    assert manifest["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "4"
    assert manifest["spec"]["replicas"] == 3  # the record's count, not the template's 0
    assert manifest["spec"]["selector"] == {"matchLabels": {"app": "web", "pod-template-hash": "abc12"}}
    (bare,) = load_objects([manifest], source="t").objects  # a valid bare ReplicaSet
    assert bare.kind == "ReplicaSet" and bare.replicas == 3


async def test_an_orphaned_replicaset_row_loads_back_as_a_bare_replicaset_with_its_uid():
    (deployment,) = load_objects([DEPLOY], source="t").objects
    (rs,) = load_objects([owned_replicaset_manifest(deployment, "abc12", 1)], source="t").objects
    record = ReplicaSetRecord(rs, "Deployment", "web", "abc12", 1, 2, 1700000000.0, "uid-1")
    store = ObjectStore()
    await store.create(owned_replicaset(record, owner_uid="deploy-uid"))
    (bare,) = load_objects([orphaned_manifest(record)], source="t").objects
    await store.update(desired_object(bare, uid=record.uid))
    loaded = load_records(store.list(None), where="test")
    assert loaded.replicasets == []
    (back,) = loaded.objects
    assert back.obj == bare and back.uid == "uid-1"


async def test_managed_fields_are_stored_with_a_desired_object_and_kept_by_a_write_that_sets_none():
    fields = [{"manager": "alice", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]
    (deployment,) = load_objects([{**DEPLOY, "metadata": {**DEPLOY["metadata"], "managedFields": fields}}],
                                 source="t").objects
    store = ObjectStore()
    await store.create(desired_object(deployment))
    (plain,) = load_objects([DEPLOY], source="t").objects
    assert managed_fields_changed(plain.raw, deployment.raw) and not managed_fields_changed(deployment.raw, plain.raw)
    kept = await store.update(desired_object(plain))
    assert kept["metadata"]["managedFields"] == fields
    (back,) = load_records(store.list(None), where="test").objects
    assert back.obj.raw["metadata"]["managedFields"] == fields

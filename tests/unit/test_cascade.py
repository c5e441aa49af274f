"""meshd.controller.cascade: a Deployment's ReplicaSet as the bare one an orphaning delete leaves."""

from __future__ import annotations

from meshd.controller.cascade import orphaned_manifest
from meshd.controller.records import ReplicaSetRecord, owned_replicaset_manifest
from meshd.manifests import load_objects

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

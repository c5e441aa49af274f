"""PersistentVolumeClaim, PersistentVolume, StorageClass and pod claim/hostPath volumes: loaded with Kubernetes'
defaults, bad input refused with the field path."""

from __future__ import annotations

import pytest
import yaml

from meshd.manifests import ManifestError, load_documents, load_objects
from meshd.manifests.render import render_pod_spec
from meshd.model.objects import PersistentVolume, PersistentVolumeClaim, Pod, StorageClass

PVC = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
       "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
PV = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv1"},
      "spec": {"capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/srv/pv1"}}}
SC = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"},
      "provisioner": "meshd.io/local", "reclaimPolicy": "Retain", "volumeBindingMode": "WaitForFirstConsumer"}
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
       "spec": {"containers": [{"name": "c", "image": "busybox", "volumeMounts": [{"name": "d", "mountPath": "/d"}]}],
                "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}


def load(doc: dict):
    (obj,) = load_documents(yaml.safe_dump(doc)).objects
    return obj


def with_(doc: dict, path: str, value) -> dict:
    doc = yaml.safe_load(yaml.safe_dump(doc))
    *parents, last = path.split(".")
    node = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if value is None:
        del node[int(last) if isinstance(node, list) else last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return doc


def test_claim_defaults() -> None:
    claim = load(PVC)
    assert isinstance(claim, PersistentVolumeClaim)
    assert (claim.access_modes, claim.storage_bytes, claim.storage_class_name, claim.volume_name) == (
        ("ReadWriteOnce",), 2**30, None, "")
    assert load(with_(PVC, "spec.storageClassName", "")).storage_class_name == ""


def test_volume_and_class_are_cluster_scoped() -> None:
    pv = load(with_(PV, "metadata.namespace", "prod"))
    assert isinstance(pv, PersistentVolume)
    assert (pv.metadata.namespace, pv.reclaim_policy, pv.host_path, pv.capacity_bytes) == ("", "Retain", "/srv/pv1",
                                                                                         2 * 2**30)
    sc = load(SC)
    assert isinstance(sc, StorageClass)
    assert (sc.metadata.namespace, sc.reclaim_policy, sc.volume_binding_mode) == ("", "Retain",
                                                                                   "WaitForFirstConsumer")
    assert load(with_(SC, "reclaimPolicy", None)).reclaim_policy == "Delete"


def test_pod_volume_sources_round_trip() -> None:
    pod = load(POD)
    assert isinstance(pod, Pod)
    volume = pod.spec.volumes[0]
    assert volume.persistent_volume_claim is not None and volume.persistent_volume_claim.claim_name == "data"
    rendered = render_pod_spec(pod.spec)["volumes"]
    assert rendered == [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]
    host = load(with_(POD, "spec.volumes.0", {"name": "d", "hostPath": {"path": "/tmp", "type": "Directory"}}))
    assert render_pod_spec(host.spec)["volumes"] == [{"name": "d", "hostPath": {"path": "/tmp", "type": "Directory"}}]
    assert load_objects([POD]).objects[0] == pod


@pytest.mark.parametrize(("doc", "path", "value", "field", "words"), [
    (PVC, "spec.resources.requests.storage", None, "spec.resources.requests.storage", "required"),
    (PVC, "spec.resources", None, "spec.resources", "required"),
    (PVC, "spec.resources.requests.storage", "-1Gi", "spec.resources.requests.storage", "greater than zero"),
    (PVC, "spec.resources.requests.storage", "0", "spec.resources.requests.storage", "greater than zero"),
    (PVC, "spec.resources.requests.storage", "lots", "spec.resources.requests.storage", ""),
    (PVC, "spec.accessModes", [], "spec.accessModes", "at least 1 access mode"),
    (PVC, "spec.accessModes", ["ReadWriteSometimes"], "spec.accessModes[0]", "unsupported value"),
    (PVC, "spec.accessModes", ["ReadWriteOncePod", "ReadOnlyMany"], "spec.accessModes", "ReadWriteOncePod"),
    (PVC, "spec.volumeMode", "Block", "spec.volumeMode", "not supported"),
    (PVC, "spec.selector", {"matchLabels": {"a": "b"}}, "spec.selector", "not supported"),
    (PVC, "spec.storageClassName", "Not_A_Name", "spec.storageClassName", "invalid name"),
    (PVC, "spec.resourcez", {}, "spec.resourcez", "unknown field"),
    (PV, "spec.capacity", None, "spec.capacity", "required"),
    (PV, "spec.hostPath", None, "spec", "volume type"),
    (PV, "spec.nfs", {"server": "x", "path": "/"}, "spec.nfs", "not supported"),
    (PV, "spec.persistentVolumeReclaimPolicy", "Recycle", "spec.persistentVolumeReclaimPolicy", "Recycle"),
    (PV, "spec.hostPath.path", "relative", "spec.hostPath.path", "absolute"),
    (PV, "spec.csi", {"driver": "ebs.csi.aws.com", "volumeHandle": "x"}, "spec.csi", "more than 1"),
    (SC, "provisioner", None, "provisioner", "required"),
    (SC, "reclaimPolicy", "Recycle", "reclaimPolicy", "unsupported value"),
    (SC, "volumeBindingMode", "Later", "volumeBindingMode", "unsupported value"),
    (POD, "spec.volumes.0", {"name": "d", "persistentVolumeClaim": {}}, "spec.volumes[0].persistentVolumeClaim.claimName",
     "required"),
    (POD, "spec.volumes.0", {"name": "d", "hostPath": {"path": "/x", "type": "Pipe"}}, "spec.volumes[0].hostPath.type",
     "unsupported value"),
    (POD, "spec.volumes.0", {"name": "d", "hostPath": {"path": "x"}}, "spec.volumes[0].hostPath.path", "absolute"),
    (POD, "spec.volumes.0", {"name": "d", "hostPath": {"path": "/"}, "emptyDir": {}}, "spec.volumes[0].hostPath",
     "more than 1"),
    (POD, "spec.volumes.0", {"name": "d", "ephemeral": {"volumeClaimTemplate": {}}}, "spec.volumes[0].ephemeral",
     "not supported"),
])
def test_bad_input_names_the_field(doc: dict, path: str, value, field: str, words: str) -> None:
    with pytest.raises(ManifestError) as info:
        load(with_(doc, path, value))
    assert info.value.field_path == field, str(info.value)
    assert words in str(info.value)

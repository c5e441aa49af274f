"""The binder's pure decisions: a claim's class and phase, a volume's phase, and what to bind or provision."""

from __future__ import annotations

from meshd.manifests import load_objects
from meshd.model.objects import ClaimRef, PersistentVolume, PersistentVolumeClaim, StorageClass
from meshd.controller.volumes.binding import Bind, Claim, Provision, Reclaim, claim_state, plan, volume_phase
from meshd.controller.volumes.defaults import default_class_manifest


def claim(name: str = "data", *, uid: str = "u1", size: str = "1Gi", modes=("ReadWriteOnce",), **spec) -> Claim:
    doc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
           "spec": {"accessModes": list(modes), "resources": {"requests": {"storage": size}}, **spec}}
    (obj,) = load_objects([doc]).objects
    assert isinstance(obj, PersistentVolumeClaim)
    return Claim(obj, uid)


def volume(name: str, size: str = "1Gi", *, sc: str = "", ref: ClaimRef | None = None,
           policy: str = "Retain") -> PersistentVolume:
    spec = {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/srv/" + name},
            "storageClassName": sc, "persistentVolumeReclaimPolicy": policy}
    if ref is not None:
        spec["claimRef"] = {"namespace": ref.namespace, "name": ref.name, "uid": ref.uid}
    (obj,) = load_objects([{"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
                            "spec": spec}]).objects
    assert isinstance(obj, PersistentVolume)
    return obj


def storage_class(doc: dict | None = None) -> dict[str, StorageClass]:
    (obj,) = load_objects([doc or default_class_manifest()]).objects
    assert isinstance(obj, StorageClass)
    return {obj.metadata.name: obj}


LOCAL = storage_class()
OTHER = storage_class({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "ebs"},
                       "provisioner": "ebs.csi.aws.com"})


def test_a_claim_without_class_gets_the_default_and_is_provisioned() -> None:
    c = claim()
    state = claim_state(c, {}, LOCAL, has_consumer=False)
    assert (state.phase, state.class_name, state.reason) == ("Pending", "local", "Provisioning")
    assert plan([c], {}, LOCAL) == [Provision(("default", "data"), "pvc-u1", "local", "Delete")]


def test_pending_reasons() -> None:
    assert claim_state(claim(storageClassName="fast"), {}, LOCAL, has_consumer=False).message == \
        'storageclass.storage.k8s.io "fast" not found'
    assert claim_state(claim(storageClassName="ebs"), {}, OTHER, has_consumer=False).reason == "ExternalProvisioning"
    assert claim_state(claim(), {}, {}, has_consumer=False).reason == "FailedBinding"
    wait = storage_class({**default_class_manifest(), "volumeBindingMode": "WaitForFirstConsumer"})
    assert claim_state(claim(), {}, wait, has_consumer=False).reason == "WaitForFirstConsumer"
    assert plan([claim()], {}, wait) == []
    assert plan([claim()], {}, wait, consumers=[("default", "data")])[0] == Provision(
        ("default", "data"), "pvc-u1", "local", "Delete")
    assert plan([claim(storageClassName="nope")], {}, LOCAL) == []


def test_an_available_volume_that_fits_is_bound_smallest_first() -> None:
    volumes = {v.metadata.name: v for v in (volume("big", "10Gi", sc="local"), volume("small", "2Gi", sc="local"),
                                            volume("tiny", "100Mi", sc="local"), volume("other", "1Gi", sc="x"))}
    assert plan([claim()], volumes, LOCAL) == [Bind(("default", "data"), "small")]
    assert plan([claim(volumeName="big")], volumes, LOCAL) == [Bind(("default", "data"), "big")]


def test_phases_follow_the_claim_ref() -> None:
    c = claim(volumeName="pvc-u1")
    bound = volume("pvc-u1", sc="local", ref=ClaimRef("default", "data", "u1"), policy="Delete")
    assert claim_state(c, {"pvc-u1": bound}, LOCAL, has_consumer=False).phase == "Bound"
    assert volume_phase(bound, {c.key: c}) == "Bound"
    assert volume_phase(bound, {}) == "Released"
    assert volume_phase(bound, {c.key: Claim(c.obj, "another-uid")}) == "Released"
    assert volume_phase(volume("free"), {}) == "Available"
    assert plan([], {"pvc-u1": bound}, LOCAL) == [Reclaim("pvc-u1")]
    retained = volume("kept", sc="local", ref=ClaimRef("default", "data", "u1"), policy="Retain")
    assert plan([], {"kept": retained}, LOCAL) == []
    # a released volume is not bound again to a new claim of the same name (another uid)
    assert plan([claim(uid="u2")], {"kept": retained}, LOCAL) == [
        Provision(("default", "data"), "pvc-u2", "local", "Delete")]


def test_a_claim_applied_again_without_its_volume_name_stays_bound() -> None:
    bound = volume("pvc-u1", sc="local", ref=ClaimRef("default", "data", "u1"), policy="Delete")
    state = claim_state(claim(), {"pvc-u1": bound}, LOCAL, has_consumer=False)
    assert (state.phase, state.volume) == ("Bound", "pvc-u1")
    assert plan([claim()], {"pvc-u1": bound}, LOCAL) == []

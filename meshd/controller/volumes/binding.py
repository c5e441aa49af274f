"""Claims, volumes and classes: which class a claim gets, whether it is bound, what a volume's phase is, and what
the binder should do next (bind to an available volume, provision a new one, reclaim a released one). Pure: the
objects in, decisions out; meshd.controller.volumes.provisioner does the I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from meshd.manifests.storage import LOCAL_PROVISIONER, is_default_class
from meshd.model.objects import PersistentVolume, PersistentVolumeClaim, StorageClass

ClaimPhase = Literal["Pending", "Bound", "Lost"]
VolumePhase = Literal["Available", "Bound", "Released", "Failed"]
ClaimKey = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class Claim:
    obj: PersistentVolumeClaim
    uid: str
    terminating: bool = False

    @property
    def key(self) -> ClaimKey:
        return self.obj.metadata.namespace, self.obj.metadata.name


@dataclass(frozen=True)
class ClaimState:
    phase: ClaimPhase
    volume: str = ""  # the bound PersistentVolume's name
    class_name: str = ""  # the StorageClass it has (the default one when it names none)
    reason: str = ""  # why it is Pending, as the binder's events say it
    message: str = ""


def default_class(classes: Iterable[StorageClass]) -> StorageClass | None:
    """The default StorageClass; with several, the newest wins as in Kubernetes (here: the last by name)."""
    defaults = sorted((c for c in classes if is_default_class(c)), key=lambda c: c.metadata.name)
    return defaults[-1] if defaults else None


def class_of(claim: PersistentVolumeClaim, classes: Mapping[str, StorageClass]) -> str:
    """A claim's class: its storageClassName, else the default class's name ("" when there is none)."""
    if claim.storage_class_name is not None:
        return claim.storage_class_name
    default = default_class(classes.values())
    return default.metadata.name if default is not None else ""


def claims_match(volume: PersistentVolume, claim: Claim) -> bool:
    """Whether the volume's claimRef names this claim (this very object when the ref carries a uid)."""
    ref = volume.claim_ref
    return ref is not None and (ref.namespace, ref.name) == claim.key and ref.uid in ("", claim.uid)


def claim_state(claim: Claim, volumes: Mapping[str, PersistentVolume], classes: Mapping[str, StorageClass], *,
                has_consumer: bool) -> ClaimState:
    class_name = class_of(claim.obj, classes)
    bound = volumes.get(claim.obj.volume_name) if claim.obj.volume_name else None
    if bound is not None and claims_match(bound, claim):
        return ClaimState("Bound", bound.metadata.name, class_name)
    if not claim.obj.volume_name and claim.uid:  # applied again without the volumeName the binder set
        bound = next((v for v in volumes.values() if v.claim_ref is not None and v.claim_ref.uid == claim.uid
                      and claims_match(v, claim)), None)
        if bound is not None:
            return ClaimState("Bound", bound.metadata.name, bound.storage_class_name or class_name)
    if claim.obj.volume_name and bound is None and claim.uid and _was_bound(claim):
        return ClaimState("Lost", claim.obj.volume_name, class_name, "ClaimLost",
                          f'Bound claim has lost its PersistentVolume "{claim.obj.volume_name}". Data on the '
                          f"volume is lost!")
    if claim.obj.volume_name:
        return ClaimState("Pending", "", class_name, "FailedBinding",
                          f'volume "{claim.obj.volume_name}" not found' if bound is None else
                          f'volume "{claim.obj.volume_name}" is bound to another claim or does not fit it')
    if not class_name:
        return ClaimState("Pending", "", "", "FailedBinding",
                          "no persistent volumes available for this claim and no storage class is set")
    sc = classes.get(class_name)
    if sc is None:
        return ClaimState("Pending", "", class_name, "ProvisioningFailed",
                          f'storageclass.storage.k8s.io "{class_name}" not found')
    if sc.provisioner != LOCAL_PROVISIONER:
        return ClaimState("Pending", "", class_name, "ExternalProvisioning",
                          f"Waiting for a volume to be created either by the external provisioner "
                          f"'{sc.provisioner}' or manually by the system administrator (meshd provisions "
                          f"{LOCAL_PROVISIONER} only)")
    if sc.volume_binding_mode == "WaitForFirstConsumer" and not has_consumer:
        return ClaimState("Pending", "", class_name, "WaitForFirstConsumer",
                          "waiting for first consumer to be created before binding")
    return ClaimState("Pending", "", class_name, "Provisioning",
                      f'External provisioner is provisioning volume for claim "{claim.key[0]}/{claim.key[1]}"')


def _was_bound(claim: Claim) -> bool:
    """A claim whose volumeName the binder set (annotated as Kubernetes' bind-completed)."""
    return claim.obj.metadata.annotations.get(BIND_COMPLETED) == "yes"


BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"


def volume_phase(volume: PersistentVolume, claims: Mapping[ClaimKey, Claim]) -> VolumePhase:
    ref = volume.claim_ref
    if ref is None:
        return "Available"
    claim = claims.get((ref.namespace, ref.name))
    if claim is None or (ref.uid and ref.uid != claim.uid):
        return "Released"
    if claim.obj.volume_name in ("", volume.metadata.name):
        return "Bound"
    return "Released"


# --- what the binder does next ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bind:
    """Bind the claim to an existing volume (set the claim's volumeName and the volume's claimRef)."""

    claim: ClaimKey
    volume: str


@dataclass(frozen=True)
class Provision:
    """Create a volume for the claim (named pvc-<claim uid>) of its class, then bind it. `node`: in a cluster, the
    node whose disk holds it (meshd.controller.volumes.nodelocal); "" on a single node."""

    claim: ClaimKey
    volume: str
    class_name: str
    reclaim_policy: Literal["Retain", "Delete"]
    node: str = ""


@dataclass(frozen=True)
class Reclaim:
    """A released volume with reclaimPolicy Delete: remove its data and the PersistentVolume."""

    volume: str


Action = Bind | Provision | Reclaim


def fits(volume: PersistentVolume, claim: PersistentVolumeClaim, class_name: str) -> bool:
    return (volume.storage_class_name == class_name and volume.capacity_bytes >= claim.storage_bytes
            and set(claim.access_modes) <= set(volume.access_modes))


def plan(claims: Sequence[Claim], volumes: Mapping[str, PersistentVolume], classes: Mapping[str, StorageClass], *,
         consumers: Iterable[ClaimKey] = (), consumer_nodes: Mapping[ClaimKey, str] | None = None) -> list[Action]:
    """The binder's next steps, in order: existing volumes first (the smallest that fits, as Kubernetes picks),
    then provisioning; and the reclaiming of released volumes with reclaimPolicy Delete. `consumer_nodes` (in a
    cluster: claim -> the node of its first consumer bound to one): a claim is provisioned on that node, and
    waits for one."""
    wanted = set(consumers)
    by_key = {c.key: c for c in claims}
    actions: list[Action] = []
    taken: set[str] = set()
    for claim in sorted(claims, key=lambda c: c.key):
        if claim.terminating:
            continue
        state = claim_state(claim, volumes, classes, has_consumer=claim.key in wanted)
        if state.phase != "Pending":
            continue
        if claim.obj.volume_name:
            volume = volumes.get(claim.obj.volume_name)
            if volume is not None and volume.metadata.name not in taken and (
                    volume.claim_ref is None or claims_match(volume, claim)) and \
                    fits(volume, claim.obj, volume.storage_class_name):
                actions.append(Bind(claim.key, volume.metadata.name))
                taken.add(volume.metadata.name)
            continue
        candidates = [v for v in volumes.values() if v.metadata.name not in taken
                      and (claims_match(v, claim) or (v.claim_ref is None and fits(v, claim.obj, state.class_name)))]
        if candidates:
            chosen = min(candidates, key=lambda v: (not claims_match(v, claim), v.capacity_bytes, v.metadata.name))
            actions.append(Bind(claim.key, chosen.metadata.name))
            taken.add(chosen.metadata.name)
            continue
        if state.reason == "Provisioning":
            sc = classes[state.class_name]
            name = f"pvc-{claim.uid}"
            node = consumer_nodes.get(claim.key, "") if consumer_nodes is not None else ""
            if name not in volumes and (consumer_nodes is None or node):
                actions.append(Provision(claim.key, name, sc.metadata.name, sc.reclaim_policy, node))
    for volume in sorted(volumes.values(), key=lambda v: v.metadata.name):
        if volume.reclaim_policy == "Delete" and volume_phase(volume, by_key) == "Released":
            actions.append(Reclaim(volume.metadata.name))
    return actions


__all__ = ["BIND_COMPLETED", "BOUND_BY_CONTROLLER", "PROVISIONED_BY", "Action", "Bind", "Claim", "ClaimState",
           "Provision", "Reclaim", "claim_state", "class_of", "claims_match", "default_class", "fits", "plan",
           "volume_phase"]

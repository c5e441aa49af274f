"""Deletion as the Kubernetes API server decides it, the pure part: whether a DELETE removes an object at once or
marks it (metadata.deletionTimestamp set, the object Terminating, still visible) because finalizers hold it;
which finalizers a propagationPolicy adds (Foreground: `foregroundDeletion`, taken off by the garbage collector
once no dependent is left); when a Terminating object is finally removed (no finalizer left); and which writes a
Terminating object still takes (metadata: finalizers taken off, labels, annotations) and which it refuses (a new
finalizer, as Kubernetes; a changed spec, which meshd's controllers would not act on). Objects in, decisions out;
the writes are meshd.controller.terminating's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshd.model.kept import KEPT

FOREGROUND = "foregroundDeletion"  # Kubernetes' finalizer of an owner waiting for its dependents
ORPHAN = "orphan"  # Kubernetes' finalizer of an owner whose dependents are being released
POLICIES = ("Background", "Foreground", "Orphan")
# the kinds meshd keeps Terminating while finalizers hold them (the owners, the config objects, Services,
# Ingresses and the kinds of meshd.model.kept); a Pod, a claim and a volume have their own deletion (grace,
# pvc-protection), a Namespace its own (meshd.controller.batch)
TERMINABLE = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "ConfigMap", "Secret",
              "Service", "Ingress", *(k.kind for k in KEPT))
OWNERS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob")  # kinds that have dependents
# metadata a write to a Terminating object may change (the rest of it is the server's)
EDITABLE_METADATA = ("labels", "annotations", "finalizers", "managedFields")


@dataclass(frozen=True)
class DeletePlan:
    """What a DELETE does: "now" (removed at once), "mark" (deletionTimestamp and these finalizers written: the
    object stays Terminating) or "pending" (Terminating already, nothing to add: answered as it is)."""

    action: str
    finalizers: tuple[str, ...] = ()


def finalizers_of(meta: Mapping[str, Any]) -> tuple[str, ...]:
    value = meta.get("finalizers") or ()
    return tuple(str(f) for f in value) if isinstance(value, (list, tuple)) else ()


def terminating(meta: Mapping[str, Any]) -> bool:
    return bool(meta.get("deletionTimestamp"))


def plan_delete(kind: str, meta: Mapping[str, Any], policy: str, *, graceful: bool = False) -> DeletePlan:
    """The API server's decision for one DELETE of an object with this metadata under `policy`: an owner deleted
    in the Foreground gets the foregroundDeletion finalizer; an object any finalizer holds is marked; one none
    holds goes now, unless `graceful` (a Pod with a grace period: marked while its containers stop). A second
    DELETE of a Terminating object only adds what its policy asks for."""
    if policy not in POLICIES:
        raise ValueError(f"propagationPolicy must be Background, Foreground or Orphan, not {policy!r}")
    held = finalizers_of(meta)
    wanted = held + ((FOREGROUND,) if policy == "Foreground" and kind in OWNERS and FOREGROUND not in held else ())
    if terminating(meta):
        return DeletePlan("mark", wanted) if wanted != held else DeletePlan("pending", held)
    if wanted or graceful:
        return DeletePlan("mark", wanted)
    return DeletePlan("now")


def graceful_pod_delete(options: Mapping[str, Any], spec_grace: float | None) -> bool:
    """Whether a user's Pod deleted with these DeleteOptions stays Terminating while its containers stop (as the
    API server marks it): not with gracePeriodSeconds 0 (`--grace-period=0 --force`) or a spec's grace of 0."""
    grace = options.get("gracePeriodSeconds")
    if grace is None:
        grace = 30 if spec_grace is None else spec_grace
    try:
        return float(grace) > 0
    except (TypeError, ValueError):
        return True


def without_foreground(meta: Mapping[str, Any], dependents_left: int) -> tuple[str, ...] | None:
    """The finalizers once the garbage collector takes foregroundDeletion off (no dependent left), or None when
    it stays (dependents left) or is not there."""
    held = finalizers_of(meta)
    if FOREGROUND not in held or dependents_left > 0 or not terminating(meta):
        return None
    return tuple(f for f in held if f != FOREGROUND)


def finished(meta: Mapping[str, Any]) -> bool:
    """A Terminating object no finalizer holds any more: the store removes it."""
    return terminating(meta) and not finalizers_of(meta)


def update_refusal(live: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, str] | None:
    """Why a write to a Terminating object is refused, as (field, message), or None. Kubernetes forbids a new
    finalizer ("no new finalizers can be added if the object is being deleted"); meshd also refuses any other
    change than to labels, annotations and finalizers (its controllers no longer act on the object)."""
    old_meta, new_meta = live.get("metadata") or {}, new.get("metadata") or {}
    if not terminating(old_meta):
        return None
    added = [f for f in finalizers_of(new_meta) if f not in finalizers_of(old_meta)]
    if added:
        return ("metadata.finalizers", "Forbidden: no new finalizers can be added if the object is being deleted, "
                                       f"found new finalizers {_go_strings(added)}")
    for key in sorted(set(live) | set(new)):
        if key in ("metadata", "status", "apiVersion", "kind"):
            continue
        if live.get(key) != new.get(key):
            return (key, f"Forbidden: the object is being deleted (metadata.deletionTimestamp is set): only its "
                         f"labels, annotations and finalizers can change, not its {key}")
    return None


def edited_metadata(stored: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The stored metadata with what a write may change on a Terminating object taken from `new`: its labels,
    annotations and finalizers (one the write leaves out is removed, as a replace does), its managedFields when
    it sends them."""
    out = {k: v for k, v in stored.items() if k not in ("labels", "annotations", "finalizers")}
    out.update({k: new[k] for k in ("labels", "annotations", "finalizers") if new.get(k)})
    if new.get("managedFields") is not None:
        out["managedFields"] = new["managedFields"]
    return out


def marked(meta: Mapping[str, Any], finalizers: Sequence[str], now: str) -> dict[str, Any]:
    """The metadata of an object being marked for deletion at `now` (kept if it was already)."""
    out = dict(meta)
    out.setdefault("deletionTimestamp", now)
    out.setdefault("deletionGracePeriodSeconds", 0)
    if finalizers:
        out["finalizers"] = list(finalizers)
    return out


def foreground_dependent(meta: Mapping[str, Any], owner_meta: Mapping[str, Any] | None) -> dict[str, Any]:
    """A dependent's metadata while its owner is deleted in the foreground: Kubernetes' garbage collector
    deletes a dependent that has dependents of its own (a Deployment's ReplicaSet and its pods) in the
    foreground too, so it is Terminating with the foregroundDeletion finalizer until they are gone. Unchanged
    when the owner is not waiting for its dependents. Pure."""
    if owner_meta is None or not terminating(owner_meta) or FOREGROUND not in finalizers_of(owner_meta):
        return dict(meta)
    return marked(meta, (*finalizers_of(meta), *(() if FOREGROUND in finalizers_of(meta) else (FOREGROUND,))),
                  str(owner_meta["deletionTimestamp"]))


def _go_strings(values: Sequence[str]) -> str:
    return "[]string{" + ", ".join(f'"{v}"' for v in values) + "}"


__all__ = ["EDITABLE_METADATA", "FOREGROUND", "ORPHAN", "OWNERS", "POLICIES", "TERMINABLE", "DeletePlan",
           "edited_metadata", "finalizers_of", "finished", "foreground_dependent", "graceful_pod_delete", "marked",
           "plan_delete", "terminating", "update_refusal", "without_foreground"]

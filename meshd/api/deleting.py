"""The API's side of Terminating objects (meshd.controller.deletion decides, meshd.controller.terminating writes):
a DELETE that finalizers hold (a Foreground one adds foregroundDeletion) marks the object and answers it, 200
with its deletionTimestamp, as the API server does; a write to a Terminating object changes its metadata only
(a finalizer taken off with a PATCH: the last one gone, the object goes) or is refused with a 422; a Terminating
ReplicaSet is served until it goes, its pods gone already."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from meshd.api import status as api_status
from meshd.api.kinds import Kind
from meshd.controller import cascade, deletion, terminating
from meshd.model.objects import Pod

if TYPE_CHECKING:
    from meshd.controller.loop import Controller

DELETION_METADATA = ("deletionTimestamp", "deletionGracePeriodSeconds", "finalizers")


async def delete(controller: Controller, kind: Kind, namespace: str, name: str, policy: str,
                 options: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """Carries out a DELETE that leaves the object Terminating and answers the object as stored; None when the
    object goes at once (the caller deletes it as before). A user's Pod on one node is Terminating while its
    containers stop (its grace period), as a kubelet confirms a pod's deletion."""
    key = (kind.kind, namespace, name)
    graceful = _graceful_pod(controller, key, options or {})
    if key not in controller.objects and key not in controller.terminating:
        return None  # (a Deployment's ReplicaSet is its Deployment's: deleted as before)
    if kind.kind not in deletion.TERMINABLE and not graceful:
        return None
    stored = controller.store.get(*key)
    if stored is None:
        return None
    plan = deletion.plan_delete(kind.kind, stored["metadata"], policy, graceful=graceful)
    if plan.action == "now":
        return None
    if plan.action == "pending":
        return copy.deepcopy(dict(stored))
    if policy == "Orphan" and kind.kind in cascade.ORPHANABLE and not deletion.terminating(stored["metadata"]):
        await cascade.delete_orphaning(controller, kind.kind, namespace, name, keep=plan.finalizers)
        return copy.deepcopy(dict(controller.store.get(kind.kind, namespace, name) or stored))
    return dict(await terminating.mark(controller, kind.kind, namespace, name, plan.finalizers))


def _graceful_pod(controller: Controller, key: tuple[str, str, str], options: Mapping[str, Any]) -> bool:
    """Whether this DELETE leaves a user's Pod Terminating (one node only): while its containers stop, and after
    while a finalizer holds it (also when forced, as the API server marks it)."""
    record = controller.objects.get(key) if terminating.graceful_pods(controller) else None
    if record is None or not isinstance(record.obj, Pod):
        return False
    stored = controller.store.get(*key)
    return (stored is not None and bool(deletion.finalizers_of(stored["metadata"]))) or deletion.graceful_pod_delete(
        options, record.obj.spec.termination_grace_period_seconds)


def refused(kind: Kind, name: str, live: dict[str, Any], new: dict[str, Any]) -> web.Response | None:
    """The 422 of a write a Terminating object does not take, or None."""
    problem = deletion.update_refusal(live, new)
    if problem is None:
        return None
    field, message = problem
    group = f".{kind.group}" if kind.group else ""
    return api_status.response(422, f'{kind.kind}{group} "{name}" is invalid: {field}: {message}', details={
        "name": name, "kind": kind.plural, **({"group": kind.group} if kind.group else {}),
        "causes": [{"reason": "FieldValueForbidden", "message": message, "field": field}]})


def held(controller: Controller, kind: Kind, namespace: str, name: str) -> bool:
    return terminating.held(controller, (kind.kind, namespace, name))


async def edit(controller: Controller, kind: Kind, namespace: str, name: str, obj: dict[str, Any],
               managed: list[dict[str, Any]] | None, check: Callable[[Mapping[str, Any]], None]) -> dict[str, Any]:
    """A write of a Terminating object's metadata (`check(stored)` refuses a stale one by raising); answers the
    object (as it was last, once it is gone)."""
    meta = dict(obj.get("metadata") or {})
    if managed is not None:
        meta["managedFields"] = managed
    written = await terminating.edit(controller, (kind.kind, namespace, name), meta, check)
    if written is None:
        return obj
    return copy.deepcopy(dict(written))


def with_deletion(meta: dict[str, Any], stored: Any) -> dict[str, Any]:
    """An object's served metadata with its stored deletionTimestamp and finalizers."""
    if stored is not None:
        meta.update({k: copy.deepcopy(stored["metadata"][k]) for k in DELETION_METADATA if k in stored["metadata"]})
    return meta


def terminating_replicasets(controller: Controller, namespace: str | None,
                            served: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """The Terminating ReplicaSets whose records went with their pods (they stay until the store row goes)."""
    out = []
    for kind, ns, name in sorted(controller.terminating):
        if kind != "ReplicaSet" or (namespace is not None and ns != namespace) or (ns, name) in served:
            continue
        stored = controller.store.get(kind, ns, name)
        if stored is None:
            continue
        shown = copy.deepcopy(dict(stored))
        shown["status"] = {"replicas": 0, "fullyLabeledReplicas": 0, "readyReplicas": 0, "availableReplicas": 0,
                           "observedGeneration": int(shown["metadata"].get("generation") or 1)}
        out.append(shown)
    return out


__all__ = ["delete", "edit", "held", "refused", "terminating_replicasets", "with_deletion"]

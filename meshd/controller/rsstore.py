"""The ReplicaSets Deployments own, in the store: which rows to write after a pass (a pure decision: the ones that
changed since the last write, the new ones, the ones gone), the write itself, and the controller's records loaded
back from the store at start."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from meshd.controller.persist import is_owned_pod, load_records, owned_replicaset
from meshd.controller.records import ReplicaSetRecord
from meshd.controller.replicasets import ensure_bare_replicaset
from meshd.manifests.loader import API_VERSIONS
from meshd.model.objects import ReplicaSet, object_key
from meshd.store import Create, Delete, Operation, StoreError, Update

if TYPE_CHECKING:
    from meshd.controller.loop import Controller

log = logging.getLogger(__name__)

Key = tuple[str, str]
Signature = tuple[Any, ...]  # (the ReplicaSet, revision, replicas, uid, its owner's uid): what its row says


def signature(rs: ReplicaSetRecord, owner_uid: str) -> Signature:
    return (rs.rs, rs.revision, rs.replicas, rs.uid, owner_uid)


def replicaset_writes(replicasets: Mapping[Key, ReplicaSetRecord], persisted: Mapping[Key, Signature], *,
                      owner_uid: Callable[[ReplicaSetRecord], str | None], bare: Callable[[Key], bool],
                      stored: Callable[[Key], bool]) -> tuple[list[Operation], dict[Key, Signature]]:
    """The writes that bring the store's rows of the owned ReplicaSets in line with the records, and what the rows
    say once written. `owner_uid`: the owning Deployment's uid (None: deleted, its last written uid is kept);
    `bare(key)`: a ReplicaSet object of that name exists (orphaned: its row is the user's now, never deleted);
    `stored(key)`: the store holds a row. Pure."""
    operations: list[Operation] = []
    signatures: dict[Key, Signature] = {}
    for key, rs in replicasets.items():
        if rs.owner_kind != "Deployment":
            continue  # a bare ReplicaSet's row comes from its object
        previous = persisted.get(key)
        uid = owner_uid(rs)
        if uid is None:
            uid = previous[4] if previous else ""
        signatures[key] = wanted = signature(rs, uid)
        if previous != wanted:
            row = owned_replicaset(rs, owner_uid=uid)
            operations.append(Update(row) if previous is not None else Create(row))
    operations += [Delete("ReplicaSet", *key) for key in persisted
                   if key not in signatures and not bare(key) and stored(key)]
    return operations, signatures


def _owner_uid(c: Controller) -> Callable[[ReplicaSetRecord], str | None]:
    def uid(rs: ReplicaSetRecord) -> str | None:
        owner = c.objects.get(("Deployment", rs.namespace, rs.owner))
        return owner.uid if owner else None
    return uid


async def persist_replicasets(c: Controller) -> None:
    """Writes the owned ReplicaSets that changed since the last write, in one transaction; if it cannot be
    written it is tried again a little later (they are derived, and memory only runs ahead of the store)."""
    c._dirty = False
    operations, signatures = replicaset_writes(
        c.replicasets, c._persisted_rs, owner_uid=_owner_uid(c),
        bare=lambda key: ("ReplicaSet", *key) in c.objects,  # orphaned: bare now (meshd.controller.cascade)
        stored=lambda key: c.store.get("ReplicaSet", *key) is not None)
    if not operations:
        return
    try:
        await c.store.transaction(operations)
    except StoreError as error:
        log.error("could not persist ReplicaSets (trying again): %s", error)
        c._dirty = True
        c._call_at(c.now() + 5)
        return
    c._persisted_rs = signatures


def load(c: Controller) -> None:
    """The controller's records from its store: the desired objects and the ReplicaSets Deployments own."""
    loaded = load_records([o for o in c.store.list(None) if o["kind"] in API_VERSIONS  # not Node, Lease
                           and not is_owned_pod(o)],  # nor a controller's Pod object (meshd.cluster.pods)
                          where=f"state store {c.state_dir}")
    for record in loaded.objects:
        c.objects[object_key(record.obj)] = record
    owner_uid = _owner_uid(c)
    for rs in loaded.replicasets:
        c.replicasets[(rs.namespace, rs.name)] = rs
        c._persisted_rs[(rs.namespace, rs.name)] = signature(rs, owner_uid(rs) or "")
    for record in c.objects.values():  # bare ReplicaSets' records, so their pods are adopted
        if isinstance(record.obj, ReplicaSet):
            ensure_bare_replicaset(c, record, record.created)


__all__ = ["load", "persist_replicasets", "replicaset_writes", "signature"]

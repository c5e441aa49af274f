"""The controller's records as store objects and back: a desired object is its manifest with the store's
metadata; a ReplicaSet a Deployment owns is an apps/v1 ReplicaSet with an ownerReference (uid) to it and its
replica count in spec.replicas. Also the one-time migration of the old state.json into the store."""

from __future__ import annotations

import asyncio
import calendar
import copy
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshd.controller.records import REVISION_ANNOTATION, TEMPLATE_HASH_LABEL, ObjectRecord, ReplicaSetRecord
from meshd.manifests import ManifestError, load_objects
from meshd.model.objects import KubeObject, ReplicaSet
from meshd.store import CorruptStore, Create, ObjectStore, Operation

log = logging.getLogger(__name__)

STATE_JSON = "state.json"
_SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp", "ownerReferences", "managedFields",
                  "selfLink", "deletionTimestamp")
_DESIRED_SERVER_FIELDS = tuple(f for f in _SERVER_FIELDS if f != "managedFields")  # the API's field managers stay


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def parse_rfc3339(text: Any) -> float:
    try:
        return float(calendar.timegm(time.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return 0.0


def desired_object(obj: KubeObject, *, uid: str | None = None, created: float | None = None,
                   generation: int | None = None) -> dict[str, Any]:
    """A desired object as the store keeps it: the manifest, with the server's metadata (never the user's)."""
    stored = copy.deepcopy(dict(obj.raw))
    metadata = {k: v for k, v in (stored.get("metadata") or {}).items() if k not in _DESIRED_SERVER_FIELDS}
    metadata["namespace"] = obj.metadata.namespace
    if uid:
        metadata["uid"] = uid
    if created is not None:
        metadata["creationTimestamp"] = rfc3339(created)
    if generation is not None:
        metadata["generation"] = generation
    stored["metadata"] = metadata
    return stored


def controller_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    """The ownerReference of an object's controller, an apps/v1 one (a Deployment, a ReplicaSet)."""
    return {"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": True,
            "blockOwnerDeletion": True}


def owned_replicaset(rs: ReplicaSetRecord, *, owner_uid: str) -> dict[str, Any]:
    """A ReplicaSet a Deployment owns, as the store keeps it."""
    stored = copy.deepcopy(dict(rs.rs.raw))
    metadata = {k: v for k, v in (stored.get("metadata") or {}).items() if k not in _SERVER_FIELDS}
    metadata.update(namespace=rs.namespace, uid=rs.uid, creationTimestamp=rfc3339(rs.created))
    metadata["annotations"] = {**(metadata.get("annotations") or {}), REVISION_ANNOTATION: str(rs.revision)}
    metadata["ownerReferences"] = [controller_reference(rs.owner_kind, rs.owner, owner_uid)]
    stored["metadata"] = metadata
    stored.setdefault("spec", {})["replicas"] = rs.replicas
    return stored


def managed_fields_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether a write sets other metadata.managedFields than the object has (one that sets none keeps them)."""
    sent = (new.get("metadata") or {}).get("managedFields")
    return sent is not None and sent != (old.get("metadata") or {}).get("managedFields")


def is_owned_replicaset(stored: Mapping[str, Any]) -> bool:
    refs = (stored.get("metadata") or {}).get("ownerReferences") or []
    return stored.get("kind") == "ReplicaSet" and any(r.get("kind") == "Deployment" and r.get("controller")
                                                      for r in refs)


def is_owned_pod(stored: Mapping[str, Any]) -> bool:
    """A Pod a controller made (in a cluster its object is in the store: meshd.cluster.pods), not a user's Pod."""
    refs = (stored.get("metadata") or {}).get("ownerReferences") or []
    return stored.get("kind") == "Pod" and any(isinstance(r, Mapping) and r.get("controller") for r in refs)


def _manifest(stored: Mapping[str, Any]) -> dict[str, Any]:
    manifest = copy.deepcopy(dict(stored))
    manifest["metadata"] = {k: v for k, v in manifest["metadata"].items() if k not in _DESIRED_SERVER_FIELDS}
    return manifest


@dataclass
class Loaded:
    objects: list[ObjectRecord] = field(default_factory=list)
    replicasets: list[ReplicaSetRecord] = field(default_factory=list)
    owned_rows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # as stored, by (ns, name)


def load_records(stored_objects: Iterable[Mapping[str, Any]], *, where: str) -> Loaded:
    """The controller's records from the store; one that no longer loads is reported and left out (it stays in
    the store, so nothing is lost: applying it again replaces it)."""
    loaded = Loaded()
    for stored in stored_objects:
        meta = stored["metadata"]
        what = f'{stored.get("kind")} {meta.get("namespace")}/{meta.get("name")}'
        try:
            (obj,) = load_objects([_manifest(stored)], source=where).objects
            created = parse_rfc3339(meta.get("creationTimestamp"))
            if is_owned_replicaset(stored):
                if not isinstance(obj, ReplicaSet):
                    raise ManifestError("an owned ReplicaSet that is not a ReplicaSet", source=where)
                ref = next(r for r in meta["ownerReferences"] if r.get("controller"))
                manifest = _manifest(stored)
                manifest["spec"]["replicas"] = 0  # the template's count; the record keeps the real one
                (rs,) = load_objects([manifest], source=where).objects
                assert isinstance(rs, ReplicaSet)
                record = ReplicaSetRecord(rs, "Deployment", str(ref["name"]), rs.metadata.labels[TEMPLATE_HASH_LABEL],
                                          int(rs.metadata.annotations.get(REVISION_ANNOTATION, "1")), obj.replicas,
                                          created, str(meta["uid"]))
                loaded.replicasets.append(record)
                loaded.owned_rows[(record.namespace, record.name)] = dict(stored)
            else:
                loaded.objects.append(ObjectRecord(obj, int(meta.get("generation") or 1), created, str(meta["uid"])))
        except (ManifestError, KeyError, ValueError, TypeError, StopIteration) as error:
            log.error("state store: leaving out %s, which no longer loads (%s); it stays stored: apply it again "
                      "to replace it", what, error)
    return loaded


async def migrate_state_json(state_dir: Path, store: ObjectStore) -> int:
    """Moves an old STATE/state.json into the store (once, keeping every uid), then renames it
    state.json.migrated; CorruptStore names the file when it cannot be read. Returns the objects moved."""
    path = state_dir / STATE_JSON
    if not await asyncio.to_thread(path.exists):
        return 0
    try:
        state = json.loads(await asyncio.to_thread(path.read_bytes))
        if not isinstance(state, dict):
            raise TypeError("not a JSON object")
        operations: list[Operation] = []
        owner_uids = {("Deployment", *_ns_name(i["manifest"])): i["uid"] for i in state.get("objects", [])
                      if i["manifest"].get("kind") == "Deployment"}
        for item in state.get("objects", []):
            manifest = copy.deepcopy(item["manifest"])
            meta = manifest.setdefault("metadata", {})
            meta.update(namespace=_ns_name(manifest)[0], uid=item["uid"],
                        creationTimestamp=rfc3339(float(item["created"])), generation=int(item["generation"]))
            operations.append(Create(manifest))
        for item in state.get("replicasets", []):
            if item["owner_kind"] != "Deployment":
                continue  # a bare ReplicaSet's record comes from its object
            manifest = copy.deepcopy(item["manifest"])
            meta = manifest.setdefault("metadata", {})
            namespace = _ns_name(manifest)[0]
            meta.update(namespace=namespace, uid=item["uid"], creationTimestamp=rfc3339(float(item["created"])))
            meta["annotations"] = {**(meta.get("annotations") or {}), REVISION_ANNOTATION: str(item["revision"])}
            meta["ownerReferences"] = [controller_reference(
                "Deployment", item["owner"], owner_uids.get(("Deployment", namespace, item["owner"]), ""))]
            manifest.setdefault("spec", {})["replicas"] = int(item["replicas"])
            operations.append(Create(manifest))
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise CorruptStore(str(path), f"{type(error).__name__}: {error}") from None
    if len(store) == 0:  # else a migration committed already and only the rename was left undone
        await store.transaction(operations)
    await asyncio.to_thread(path.rename, path.with_name(STATE_JSON + ".migrated"))
    log.info("moved %d objects from %s into the state store", len(operations), path)
    return len(operations)


def _ns_name(manifest: Mapping[str, Any]) -> tuple[str, str]:
    meta = manifest.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta["name"])


__all__ = ["Loaded", "controller_reference", "desired_object", "is_owned_pod", "is_owned_replicaset", "load_records",
           "migrate_state_json", "owned_replicaset", "parse_rfc3339", "rfc3339"]

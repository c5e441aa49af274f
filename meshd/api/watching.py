"""The events of a watch (`?watch=true`) as the API server sends them, decided from snapshots: what to send first
(the `resourceVersion` / `sendInitialEvents` semantics), what changed between two snapshots, and bookmarks.
Pure; the API server feeds it snapshots of its objects."""

from __future__ import annotations

import json
from typing import Any

from meshd.api.kinds import Kind
from meshd.api.listing import ListQuery

Key = tuple[str, str]  # (namespace, name)
Snapshot = dict[Key, dict[str, Any]]
Seen = dict[Key, str]  # what the watcher was last sent of each object, as canonical JSON
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


def snapshot(objects: list[dict[str, Any]]) -> Snapshot:
    return {(str(o["metadata"].get("namespace") or ""), str(o["metadata"]["name"])): o for o in objects}


def _text(obj: dict[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def starts_with_state(query: ListQuery) -> bool:
    """Whether the watch opens with an ADDED event per existing object: asked with sendInitialEvents, or without
    a resourceVersion (or "0"), as the API server's "get state and start at most recent". With the
    resourceVersion of a list, the watch starts from now (meshd keeps no history of older versions)."""
    return query.send_initial_events or query.resource_version in ("", "0")


def start(query: ListQuery, current: Snapshot) -> tuple[Seen, list[tuple[str, dict[str, Any]]]]:
    """What the watcher is taken to have seen, and the events to send first."""
    if starts_with_state(query):
        seen: Seen = {}
        return seen, changes(seen, current)
    return {key: _text(obj) for key, obj in current.items()}, []


def changes(seen: Seen, current: Snapshot) -> list[tuple[str, dict[str, Any]]]:
    """(type, object) per change from `seen` to `current`; `seen` is updated to `current`."""
    events: list[tuple[str, dict[str, Any]]] = []
    for key, obj in current.items():
        text = _text(obj)
        before = seen.get(key)
        if before != text:
            if before is not None and _uid(json.loads(before)) != _uid(obj):
                # another object of the same name (a StatefulSet's pod made again): the old one was deleted
                events.append(("DELETED", json.loads(before)))
                before = None
            events.append(("MODIFIED" if before is not None else "ADDED", obj))
            seen[key] = text
    for key in [k for k in seen if k not in current]:
        events.append(("DELETED", json.loads(seen.pop(key))))
    return events


def _uid(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def bookmark(kind: Kind, resource_version: str, *, initial_events_end: bool) -> dict[str, Any]:
    """A BOOKMARK event's object; with initial_events_end, the one that ends sendInitialEvents' replay."""
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if initial_events_end:
        metadata["annotations"] = {INITIAL_EVENTS_END: "true"}
    return {"kind": kind.kind, "apiVersion": kind.api_version, "metadata": metadata}


__all__ = ["INITIAL_EVENTS_END", "bookmark", "changes", "snapshot", "start", "starts_with_state"]

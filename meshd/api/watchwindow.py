"""The pure half of the API's watch cache (meshd.api.watchcache), as the Kubernetes API server's watch cache: the
events of one resource in a bounded window, each with its resourceVersion; what changed between the objects the
cache holds and a fresh computation of them; where a watch starts (`resourceVersion` / `sendInitialEvents`);
and what one watcher, with its namespace, name and selectors, sees of an event. No I/O, no clock."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Key = tuple[str, str]  # (namespace, name)
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
EventType = Literal["ADDED", "MODIFIED", "DELETED"]
DEFAULT_CAPACITY = 4096  # events kept per resource for watches that resume from a resourceVersion


class TooOld(Exception):
    """A watch from a resourceVersion the window no longer reaches (the API server's 410 Gone, reason Expired)."""


@dataclass(frozen=True)
class CacheEvent:
    resource_version: int
    type: EventType
    key: Key
    object: dict[str, Any]  # stamped with the event's resourceVersion; for DELETED the last state
    previous: dict[str, Any] | None = None  # the state before (MODIFIED, DELETED): selectors look at both


@dataclass
class Entry:
    text: str  # the object as computed (not stamped), canonical JSON: what a change is detected on
    object: dict[str, Any]  # as served: stamped with the resourceVersion of its last change
    source: str = ""  # the resourceVersion it was computed with (its store version), "" if none

    def store_version(self, version: str) -> str:
        """The store version a client's resourceVersion of this object stands for: the one this entry was
        computed from ("" if it had none: no precondition) when the client has this entry's stamp, else the
        version itself."""
        return self.source if version == own_version(self.object) else version


def own_version(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def key_of(obj: dict[str, Any]) -> Key:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def canonical(obj: dict[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def stamped(obj: dict[str, Any], resource_version: int) -> dict[str, Any]:
    """A copy of the object (its metadata copied, the rest shared) carrying this resourceVersion."""
    return {**obj, "metadata": {**(obj.get("metadata") or {}), "resourceVersion": str(resource_version)}}


def _uid(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def diff(current: dict[Key, Entry], fresh: Iterable[dict[str, Any]],
         next_version: Callable[[], int]) -> list[CacheEvent]:
    """The events from `current` to the `fresh` objects, each given the next resourceVersion; `current` is
    updated. An object made again under the same name (another uid) is a DELETED then an ADDED."""
    events: list[CacheEvent] = []
    seen: set[Key] = set()
    for obj in fresh:
        key = key_of(obj)
        seen.add(key)
        text = canonical(obj)
        before = current.get(key)
        if before is not None and before.text == text:
            continue
        if before is not None and _uid(before.object) != _uid(obj):
            rv = next_version()
            events.append(CacheEvent(rv, "DELETED", key, stamped(before.object, rv), before.object))
            before = None
        rv = next_version()
        new = stamped(obj, rv)
        events.append(CacheEvent(rv, "MODIFIED" if before else "ADDED", key, new,
                                 before.object if before else None))
        current[key] = Entry(text, new, own_version(obj))
    for key in [k for k in current if k not in seen]:
        gone = current.pop(key).object
        rv = next_version()
        events.append(CacheEvent(rv, "DELETED", key, stamped(gone, rv), gone))
    return events


@dataclass
class Window:
    """The last `capacity` events of a resource, oldest first; it holds every event after `floor`."""

    floor: int
    capacity: int = DEFAULT_CAPACITY
    events: deque[CacheEvent] = field(default_factory=deque)

    def append(self, event: CacheEvent) -> None:
        if len(self.events) >= self.capacity:
            self.floor = self.events.popleft().resource_version
        self.events.append(event)

    def since(self, resource_version: int) -> list[CacheEvent]:
        """The events after `resource_version`; TooOld when some of them already left the window."""
        if resource_version < self.floor:
            raise TooOld(f"too old resource version: {resource_version} ({self.floor})")
        if not self.events or self.events[-1].resource_version <= resource_version:
            return []
        return [e for e in self.events if e.resource_version > resource_version]


def parse_resource_version(text: str) -> int | None:
    """A watch's resourceVersion: None for "" and "0" (any), else the number; ValueError if it is not one."""
    if text in ("", "0"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f'resourceVersion: Invalid value: "{text}": must be a number') from None
    if value < 0:
        raise ValueError(f'resourceVersion: Invalid value: "{text}": must not be negative')
    return value


@dataclass(frozen=True)
class Start:
    """How a watch opens: with the current objects as ADDED (`initial`), then the events after `after`."""

    initial: bool
    after: int


def start(resource_version: str, *, send_initial_events: bool, floor: int, head: int) -> Start:
    """As the API server: without a resourceVersion (or "0"), or with sendInitialEvents, the current state,
    then what follows; from N, the events after N. TooOld when the window no longer reaches N, or when N is
    ahead of this cache (one from before the agent restarted: the client lists again)."""
    wanted = parse_resource_version(resource_version)
    if send_initial_events or wanted is None:
        return Start(initial=True, after=head)
    if wanted < floor:
        raise TooOld(f"too old resource version: {wanted} ({floor})")
    if wanted > head:
        raise TooOld(f"too old resource version: {wanted} is not one this server issued (now {head}); "
                     f"list again")
    return Start(initial=False, after=wanted)


def seen_by(event: CacheEvent, matches: Callable[[dict[str, Any]], bool]) -> tuple[EventType, dict[str, Any]] | None:
    """What a watcher whose filter is `matches` sees of an event, as the Kubernetes watch cache: an object that
    comes into the selection is ADDED, one that leaves it DELETED (its previous state, the event's version)."""
    now = event.type != "DELETED" and matches(event.object)
    before = event.previous is not None and matches(event.previous)
    if event.type == "DELETED":
        return ("DELETED", event.object) if before else None
    if now and before:
        return "MODIFIED", event.object
    if now:
        return "ADDED", event.object
    if before:
        assert event.previous is not None
        return "DELETED", stamped(event.previous, event.resource_version)
    return None


def bookmark(kind: str, api_version: str, resource_version: int, *, initial_events_end: bool) -> dict[str, Any]:
    """A BOOKMARK event's object; with initial_events_end, the one that ends sendInitialEvents' replay."""
    metadata: dict[str, Any] = {"resourceVersion": str(resource_version)}
    if initial_events_end:
        metadata["annotations"] = {INITIAL_EVENTS_END: "true"}
    return {"kind": kind, "apiVersion": api_version, "metadata": metadata}


__all__ = ["DEFAULT_CAPACITY", "INITIAL_EVENTS_END", "bookmark", "CacheEvent", "Entry", "Start", "TooOld", "Window", "canonical", "diff", "key_of", "own_version",
           "parse_resource_version", "seen_by", "stamped", "start"]

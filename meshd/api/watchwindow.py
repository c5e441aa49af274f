"""The pure half of the API's watch cache (meshd.api.watchcache), as the Kubernetes API server's watch cache: the
events of one resource in a bounded window, each with its resourceVersion (a store revision); what changed
between the objects the cache holds and a computation of them (one object, or all) and the revision a change is
recorded at; which stored version a client's resourceVersion stands for; where a watch starts (`resourceVersion`
/ `sendInitialEvents`); and what one watcher, with its namespace, name and selectors, sees of an event. No I/O,
no clock."""

from __future__ import annotations

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
    computed: dict[str, Any]  # the object as computed (not stamped): what a change is detected on
    object: dict[str, Any]  # as served: stamped with the revision its last change was recorded at


@dataclass(frozen=True)
class Change:
    """One object's change between what the cache holds (`before`) and a computation of it (`after`, None: gone)."""

    key: Key
    before: Entry | None
    after: dict[str, Any] | None


def own_version(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def source_revision(obj: dict[str, Any] | None) -> int:
    """The store revision an object was computed from (its own resourceVersion), 0 if it has none."""
    version = own_version(obj) if obj is not None else ""
    return int(version) if version.isdigit() else 0


def key_of(obj: dict[str, Any]) -> Key:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def stamped(obj: dict[str, Any], resource_version: int) -> dict[str, Any]:
    """A copy of the object (its metadata copied, the rest shared) carrying this resourceVersion."""
    return {**obj, "metadata": {**(obj.get("metadata") or {}), "resourceVersion": str(resource_version)}}


def _uid(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def changed(current: dict[Key, Entry], key: Key, obj: dict[str, Any] | None) -> Change | None:
    """The change of one object (None: the cache holds it as computed already)."""
    before = current.get(key)
    if obj is None:
        return Change(key, before, None) if before is not None else None
    if before is not None and before.computed == obj:
        return None
    return Change(key, before, obj)


def changes(current: dict[Key, Entry], fresh: Iterable[dict[str, Any]]) -> list[Change]:
    """The changes from `current` to `fresh`, every object of the resource computed again."""
    out: list[Change] = []
    seen: set[Key] = set()
    for obj in fresh:
        key = key_of(obj)
        seen.add(key)
        change = changed(current, key, obj)
        if change is not None:
            out.append(change)
    out.extend(Change(key, entry, None) for key, entry in current.items() if key not in seen)
    return out


def record(current: dict[Key, Entry], change: Change, resource_version: int) -> list[CacheEvent]:
    """The events of a change recorded at this resourceVersion; `current` is updated. An object made again under
    the same name (another uid) is a DELETED then an ADDED."""
    key, before = change.key, change.before
    events: list[CacheEvent] = []
    if before is not None and (change.after is None or _uid(before.object) != _uid(change.after)):
        events.append(CacheEvent(resource_version, "DELETED", key, stamped(before.object, resource_version),
                                 before.object))
        current.pop(key, None)
        before = None
    if change.after is not None:
        new = stamped(change.after, resource_version)
        events.append(CacheEvent(resource_version, "MODIFIED" if before else "ADDED", key, new,
                                 before.object if before else None))
        current[key] = Entry(change.after, new)
    return events


def position(revision: int | None, *, head: int, source: int) -> int | None:
    """The store revision a change is recorded at: that of the store write that made it (`revision`) when it is
    after everything the cache recorded (`head`) and not below the object's own version (`source`: a client
    writes back with it); None when the change needs a fresh revision (a status computed live, a write the
    cache already passed)."""
    if revision is not None and revision > head and revision >= source:
        return revision
    return None


# the resources computed from their own objects alone (a Service: and its addresses from the endpoint registry,
# which notes them by name): a change of another kind leaves them as they are
OWN_KIND_ONLY = frozenset({"Service", "ConfigMap", "Secret"})
# the kinds no other resource shows anything of
SHOWN_NOWHERE_ELSE = frozenset({"Event"})


def affects(resource_kind: str, kinds: tuple[str, ...] | None, name: str) -> Literal["one", "all"] | None:
    """What a change of an object of `kinds` (None: of anything) named `name` ("": unknown) means for the cache
    of a resource: that object computed again ("one"), the resource computed again ("all"), or nothing."""
    if kinds is not None and resource_kind in kinds:
        return "one" if name else "all"
    if kinds is not None and (resource_kind in OWN_KIND_ONLY or set(kinds) <= SHOWN_NOWHERE_ELSE):
        return None
    return "all"


def current_version(stored: str, client: str, *, store_revision: int) -> str:
    """The stored version a client's resourceVersion stands for: a revision the client read the object at (from
    a list, a watch event or the store itself) stands for the stored object as long as no write changed it since
    (its own version is not after it, and the revision is not in the store's future); anything else stands for
    itself (and a write with it is a Conflict)."""
    if stored and client.isdigit() and stored.isdigit() and int(stored) <= int(client) <= store_revision:
        return stored
    return client


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
    then what follows (`head`: the store's revision, the cache caught up to it); from N, the events after N.
    TooOld when the window no longer reaches N, or when N is ahead of the store (not one it gave)."""
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


__all__ = ["DEFAULT_CAPACITY", "INITIAL_EVENTS_END", "OWN_KIND_ONLY", "SHOWN_NOWHERE_ELSE", "CacheEvent", "affects", "Change", "Entry", "Start", "TooOld", "Window",
           "bookmark", "changed", "changes", "current_version", "key_of", "own_version", "parse_resource_version",
           "position", "record", "seen_by", "source_revision", "stamped", "start"]

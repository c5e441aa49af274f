"""ObjectStore: the objects in memory (indexed by kind, then namespace/name: meshd.store.index), one resourceVersion counter, a
bounded watch cache, and a Backend that persists each batch before it becomes visible. Every write runs
under one lock and is written by the backend off the event loop; if it cannot be written, it is refused
whole and memory stays as it was (memory and disk never diverge).

Objects handed out are the store's own: callers must not mutate them (copy first)."""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from meshd.model.selectors import parse_selector, selects
from meshd.store.api import (
    AlreadyExists,
    Conflict,
    Create,
    Delete,
    Event,
    Expired,
    Key,
    NotFound,
    Operation,
    PersistError,
    Update,
    object_key,
)
from meshd.store.index import ObjectIndex

log = logging.getLogger(__name__)

DEFAULT_WATCH_CACHE = 8192  # events kept for watches that resume from a resourceVersion


class Backend(Protocol):
    """Durable storage of the objects and the counter; blocking calls, made from one thread at a time."""

    def load(self) -> tuple[list[dict[str, Any]], int]:
        """Every readable object and the counter; damaged records are reported and left out."""

    def commit(self, puts: list[dict[str, Any]], deletes: list[Key], resource_version: int) -> None:
        """Writes one batch atomically, or raises PersistError and writes nothing."""

    def close(self) -> None: ...


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def parse_field_selector(text: str) -> list[tuple[list[str], bool, str]]:
    """`metadata.name=x,status.phase!=Running` as (path, equal, value) terms; ValueError if malformed."""
    terms = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        for op, equal in (("!=", False), ("==", True), ("=", True)):
            field, found, value = part.partition(op)
            if found:
                if not field.strip():
                    raise ValueError(f"invalid field selector {text!r}: {part!r} names no field")
                terms.append((field.strip().split("."), equal, value.strip()))
                break
        else:
            raise ValueError(f"invalid field selector {text!r}: {part!r} is not field=value or field!=value")
    return terms


def field_matches(obj: Mapping[str, Any], terms: list[tuple[list[str], bool, str]]) -> bool:
    for path, equal, value in terms:
        current: Any = obj
        for part in path:
            current = current.get(part) if isinstance(current, Mapping) else None
        text = "" if current is None else str(current).lower() if isinstance(current, bool) else str(current)
        if (text == value) != equal:
            return False
    return True


class _Watcher:
    def __init__(self, kind: str | None, namespace: str | None, limit: int) -> None:
        self.kind, self.namespace, self.limit = kind, namespace, limit
        self.events: deque[Event] = deque()
        self.wake = asyncio.Event()
        self.overflowed = False

    def wants(self, event: Event) -> bool:
        kind, namespace, _ = object_key(event.object)
        return (self.kind is None or kind == self.kind) and (self.namespace is None or namespace == self.namespace)

    def offer(self, event: Event) -> None:
        if self.overflowed or not self.wants(event):
            return
        if len(self.events) >= self.limit:  # a consumer this far behind starts again from a list (410 Gone)
            self.overflowed = True
            self.events.clear()
        else:
            self.events.append(event)
        self.wake.set()


class ObjectStore:
    """The Store interface over a Backend (None: memory only, for tests)."""

    def __init__(self, backend: Backend | None = None, *, objects: Sequence[dict[str, Any]] = (),
                 resource_version: int = 0, watch_cache: int = DEFAULT_WATCH_CACHE) -> None:
        self._backend = backend
        self._objects = ObjectIndex((object_key(o), o) for o in objects)
        self._rv = max([resource_version, *(int(o["metadata"].get("resourceVersion") or 0) for o in objects)])
        self._cache: deque[Event] = deque(maxlen=watch_cache)
        self._cache_floor = self._rv  # the cache holds every event after this resourceVersion
        self._watchers: set[_Watcher] = set()
        self._listeners: builtins.list[Callable[[Event], None]] = []
        self._lock = asyncio.Lock()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="meshd-store") if backend else None

    @classmethod
    async def open(cls, backend: Backend, *, watch_cache: int = DEFAULT_WATCH_CACHE) -> ObjectStore:
        objects, resource_version = await asyncio.to_thread(backend.load)
        return cls(backend, objects=objects, resource_version=resource_version, watch_cache=watch_cache)

    async def close(self) -> None:
        if self._writer is not None and self._backend is not None:
            async with self._lock:
                await asyncio.get_running_loop().run_in_executor(self._writer, self._backend.close)
            self._writer.shutdown(wait=False)
            self._writer = None

    # --- reads ------------------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    def __len__(self) -> int:
        return len(self._objects)

    def get(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self._objects.get((kind, namespace, name))

    def list(self, kind: str | None, namespace: str | None = None, *, label_selector: str = "",
             field_selector: str = "") -> builtins.list[Mapping[str, Any]]:
        """Objects of a kind (None: of every kind) in a namespace (None: all), sorted by kind, namespace and
        name; ValueError on a bad selector (never "select all")."""
        labels, fields = parse_selector(label_selector), parse_field_selector(field_selector)
        kinds = self._objects.kinds() if kind is None else [kind]
        return [obj for k in kinds for _, obj in self._objects.scan(k, namespace)
                if selects(labels, obj["metadata"].get("labels")) and field_matches(obj, fields)]

    def scan(self, kind: str, namespace: str | None = None
             ) -> builtins.list[tuple[tuple[str, str], Mapping[str, Any]]]:
        """The objects of one kind (in one namespace, None: all) as ((namespace, name), object), in that key order,
        from the kind's index: reads only that kind and sorts nothing."""
        return self._objects.scan(kind, namespace)  # type: ignore[return-value]

    # --- writes -----------------------------------------------------------------------------------

    async def create(self, obj: Mapping[str, Any]) -> Mapping[str, Any]:
        return (await self.transaction([Create(obj)]))[0]

    async def update(self, obj: Mapping[str, Any]) -> Mapping[str, Any]:
        return (await self.transaction([Update(obj)]))[0]

    async def delete(self, kind: str, namespace: str, name: str, *,
                     resource_version: str | None = None) -> Mapping[str, Any]:
        return (await self.transaction([Delete(kind, namespace, name, resource_version)]))[0]

    async def transaction(self, operations: Sequence[Operation]) -> builtins.list[Mapping[str, Any]]:
        """Applies every operation or none: checked in order against the current objects (and the earlier
        operations of the batch), persisted as one write, then made visible and sent to watchers."""
        async with self._lock:
            staged, events, rv = self._stage(operations)
            if not events:
                return []
            await self._persist(staged, rv)
            for key, value in staged.items():
                if value is None:
                    self._objects.pop(key, None)
                else:
                    self._objects[key] = value
            self._rv = rv
            self._publish(events)
            return [event.object for event in events]

    def _stage(self, operations: Sequence[Operation]
               ) -> tuple[dict[Key, dict[str, Any] | None], builtins.list[Event], int]:
        """Checks the operations in order against the current objects (and the earlier ones of the batch):
        the new value of each key (None: deleted), the events, and the last resourceVersion they took."""
        staged: dict[Key, dict[str, Any] | None] = {}
        events: builtins.list[Event] = []
        rv = self._rv
        now = rfc3339(time.time())
        for op in operations:
            rv += 1
            if isinstance(op, Delete):
                key: Key = (op.kind, op.namespace, op.name)
                current = staged[key] if key in staged else self._objects.get(key)
                if current is None:
                    raise NotFound(f'{op.kind} "{op.name}" not found in namespace "{op.namespace}"')
                _check_version(current, op.resource_version)
                gone = {**current, "metadata": {**current["metadata"], "resourceVersion": str(rv)}}
                staged[key] = None
                events.append(Event("DELETED", gone))
                continue
            key = object_key(op.obj)
            if not all(key[::2]):
                raise ValueError("an object needs a kind and metadata.name")
            current = staged[key] if key in staged else self._objects.get(key)
            new = _canonical(op.obj)
            meta = new["metadata"]
            if isinstance(op, Create):
                if current is not None:
                    raise AlreadyExists(f'{key[0]} "{key[2]}" already exists in namespace "{key[1]}"')
                meta["uid"] = meta.get("uid") or str(uuid.uuid4())
                meta["creationTimestamp"] = meta.get("creationTimestamp") or now
                meta["generation"] = meta.get("generation") or 1
            else:
                if current is None:
                    raise NotFound(f'{key[0]} "{key[2]}" not found in namespace "{key[1]}"')
                _check_version(current, meta.get("resourceVersion"))
                old = current["metadata"]
                meta["uid"], meta["creationTimestamp"] = old["uid"], old["creationTimestamp"]
                if "managedFields" not in meta and old.get("managedFields"):  # kept unless set (as Kubernetes)
                    meta["managedFields"] = old["managedFields"]
                changed = new.get("spec") != current.get("spec")
                meta["generation"] = int(old.get("generation") or 1) + (1 if changed else 0)
            meta["resourceVersion"] = str(rv)
            staged[key] = new
            events.append(Event("ADDED" if current is None else "MODIFIED", new))
        return staged, events, rv

    async def tick(self) -> int:
        """A new revision that changes no object (persisted, so never handed out twice): what a reader of the
        store gives a change it did not read from the store (a status computed live), so that every version it
        hands out is one of the store's."""
        async with self._lock:
            rv = self._rv + 1
            if self._backend is not None and self._writer is not None:
                await asyncio.get_running_loop().run_in_executor(self._writer, self._backend.commit, [], [], rv)
            self._rv = rv
            return rv

    async def _persist(self, staged: dict[Key, dict[str, Any] | None], rv: int) -> None:
        if self._backend is None or self._writer is None:
            return
        puts = [v for v in staged.values() if v is not None]
        deletes = [k for k, v in staged.items() if v is None]
        await asyncio.get_running_loop().run_in_executor(self._writer, self._backend.commit, puts, deletes, rv)

    # --- watch ------------------------------------------------------------------------------------

    def listen(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Calls `listener` with every change as it becomes visible (in the same step: a reader that then reads
        the store finds it); returns what stops it. A listener must be quick and must not raise."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _publish(self, events: builtins.list[Event]) -> None:
        for event in events:
            if len(self._cache) == self._cache.maxlen:
                self._cache_floor = self._cache[0].resource_version
            self._cache.append(event)
            for watcher in self._watchers:
                watcher.offer(event)
            for listener in builtins.list(self._listeners):
                try:
                    listener(event)
                except Exception:  # one reader's bug must not fail a write that is already persisted
                    log.exception("store listener failed on %s", object_key(event.object))

    async def watch(self, kind: str | None = None, namespace: str | None = None, *,
                    from_resource_version: int | None = None) -> AsyncIterator[Event]:
        """The changes after `from_resource_version` (from the watch cache), then every new one; with None,
        first an ADDED for every current object (as a Kubernetes watch without a resourceVersion). Raises
        Expired when the cache no longer reaches back that far, or when this consumer falls too far behind."""
        watcher = _Watcher(kind, namespace, self._cache.maxlen or DEFAULT_WATCH_CACHE)
        if from_resource_version is None:
            kinds = self._objects.kinds() if kind is None else [kind]
            backlog = [Event("ADDED", o) for k in kinds for _, o in self._objects.scan(k, namespace)]
        elif from_resource_version < self._cache_floor:
            raise Expired(f"too old resource version: {from_resource_version} ({self._cache_floor})")
        else:
            backlog = [e for e in self._cache if e.resource_version > from_resource_version and watcher.wants(e)]
        watcher.events.extend(backlog)
        self._watchers.add(watcher)
        try:
            while True:
                while watcher.events:
                    yield watcher.events.popleft()
                if watcher.overflowed:
                    raise Expired("the watch fell too far behind; list again")
                watcher.wake.clear()
                await watcher.wake.wait()
        finally:
            self._watchers.discard(watcher)


def _check_version(current: Mapping[str, Any], expected: Any) -> None:
    if expected not in (None, "") and str(expected) != current["metadata"]["resourceVersion"]:
        kind, _, name = object_key(current)
        raise Conflict(f'Operation cannot be fulfilled on {kind} "{name}": the object has been modified; '
                       f"please apply your changes to the latest version and try again")


def _canonical(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A private copy of the object, checked to be JSON (what the backends store)."""
    try:
        copied = json.loads(json.dumps(obj))
    except (TypeError, ValueError) as error:
        raise ValueError(f"an object must be JSON: {error}") from None
    copied["metadata"] = dict(copied.get("metadata") or {})
    copied["metadata"].setdefault("namespace", "")
    return copied


__all__ = ["Backend", "ObjectStore", "PersistError", "field_matches", "parse_field_selector", "rfc3339"]

"""The API's watch cache, as the Kubernetes API server's: per resource, the objects as the API serves them and a
bounded window of their recent events, each at a revision of the store (SQLite's counter, etcd's revision), so
every resourceVersion a client sees (a list's, an event's, an object's) is the store's own. A change the store
announces is recorded at the store write's own revision; a change it cannot announce (a status computed live)
at a fresh revision (the store's `tick`). Changes are incremental: a change of one object of the resource (a
store write, a controller's notice) computes that object again; a change of anything else (a Pod's for its
Deployment's status, an endpoint's) computes the resource again, coalesced, as does a heartbeat. Every watcher
of a resource reads the same window, filtered by its own namespace, name and selectors. A watch from a
resourceVersion the window no longer reaches ends with an ERROR event carrying a 410 Expired Status ("too old
resource version"), which kubectl and the client libraries answer by listing again. The decisions are in
meshd.api.watchwindow; this module is the thin, stateful part."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from meshd.api import listing, status
from meshd.api.kinds import Kind
from meshd.api.watchwindow import (
    DEFAULT_CAPACITY,
    Entry,
    Key,
    TooOld,
    Window,
    affects,
    bookmark,
    changed,
    changes,
    current_version,
    key_of,
    parse_resource_version,
    position,
    record,
    seen_by,
    source_revision,
    stamped,
    start,
)
from meshd.store.api import Event, StoreError, object_key
from meshd.tasks import done_within

log = logging.getLogger(__name__)

COALESCE_SECONDS = 0.05  # a burst of changes is computed once
HEARTBEAT_SECONDS = 10.0  # a cache also recomputes this often (changes nobody announced), a watch sends a bookmark
IDLE_SECONDS = 30.0  # a cache with no watcher stops this long after its last use (the next use starts it afresh)
ONE_BY_ONE = 64  # changed objects computed one by one up to this many (or half the resource), else all at once
CATCH_UP_ROUNDS = 3  # a list or a watch records what was noted before it; changes noted meanwhile, this often more

Compute = Callable[[Kind], list[dict[str, Any]]]
ComputeOne = Callable[[Kind, str, str], "dict[str, Any] | None"]
Send = Callable[[dict[str, Any]], Awaitable[None]]
# (the kind, or kinds, of what changed, None: anything; its namespace and name; the store revision that did it)
Note = Callable[[str | tuple[str, ...] | None, str, str, int | None], None]


class Revisions:
    """The store's revisions as the caches use them: the current one, and one after a given one (the current,
    else a fresh one the store makes: nothing is ever recorded twice at one revision a client may hold)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._failing = False

    def current(self) -> int:
        return int(self._store.resource_version)

    async def after(self, head: int) -> int:
        """The current revision if it is after `head`, else a fresh one; while the store cannot make one (etcd
        unreachable), the one it makes next, so that reads and watches go on from memory meanwhile."""
        now = self.current()
        if now > head:
            return now
        try:
            revision = int(await self._store.tick())
        except StoreError as error:
            if not self._failing:
                log.warning("watch cache: the store makes no new revision (%s); recording at the next one", error)
            self._failing = True
            return head + 1
        self._failing = False
        return revision


class ResourceCache:
    """The watch cache of one resource (a Kind, every namespace)."""

    def __init__(self, kind: Kind, *, compute: Compute, compute_one: ComputeOne, revisions: Revisions,
                 capacity: int = DEFAULT_CAPACITY) -> None:
        self.kind = kind
        self._compute = compute
        self._compute_one = compute_one
        self.revisions = revisions
        self._capacity = capacity
        self.entries: dict[Key, Entry] = {}
        self.window = Window(floor=0, capacity=capacity)
        self.head = 0  # every event of this resource up to here is in the window; no revision up to it is free
        self.watchers: set[asyncio.Event] = set()
        self._dirty: dict[Key, int | None] = {}  # objects noted as changed: the store revision that did (or None)
        self._everything = False  # a change of anything: the resource is computed again
        self._wake = asyncio.Event()
        self._watched = asyncio.Event()  # set when a watcher comes
        self._lock = asyncio.Lock()  # one recording at a time (it may wait for a fresh revision)
        self._task: asyncio.Task[None] | None = None
        self._used = time.monotonic()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def ensure(self) -> None:
        """Starts the cache (one computation) unless it runs; the window begins at a fresh revision, so a watch
        from before (when nothing recorded the changes) gets 410 and lists again."""
        self._used = time.monotonic()
        if self.running:
            return
        async with self._lock:
            if self.running:
                return
            self._dirty, self._everything = {}, False  # what is noted from here on is recorded next time
            self._wake.clear()
            objects = self._compute(self.kind)
            # a fresh revision: one no earlier cache (of this agent before a restart, or before it stopped) gave
            floor = await self.revisions.after(max(self.head, self.revisions.current()))
            self.entries = {key_of(o): Entry(o, stamped(o, floor)) for o in objects}
            self.window = Window(floor=floor, capacity=self._capacity)
            self.head = floor
            self._task = asyncio.create_task(self._run(), name=f"watch cache {self.kind.plural}")

    def note(self, key: Key | None, revision: int | None = None) -> None:
        """A change: of one object of this resource (`key`, with the store revision that made it, None for a
        status computed live), or of anything (`key` None: the resource is computed again)."""
        if key is None:
            self._everything = True
        else:
            known = self._dirty.get(key)
            self._dirty[key] = revision if known is None else known if revision is None else max(known, revision)
        self._wake.set()

    def attach(self, watcher: asyncio.Event) -> None:
        self.watchers.add(watcher)
        self._watched.set()

    @property
    def pending(self) -> bool:
        """Whether a change was noted that the cache has not recorded yet."""
        return self._everything or bool(self._dirty)

    async def refresh(self, *, everything: bool = False) -> None:
        """Records what was noted (with `everything`: the resource computed again) as events in the window, each
        at the revision of the store write that made it or at one fresh revision after them; the watchers are
        woken."""
        async with self._lock:
            dirty, everything = self._dirty, everything or self._everything
            self._dirty, self._everything = {}, False
            self._wake.clear()
            if len(dirty) > max(ONE_BY_ONE, len(self.entries) // 2):  # most of it: computed again at once
                everything = True
            if everything:
                found = [(c, dirty.get(c.key)) for c in changes(self.entries, self._compute(self.kind))]
            else:
                found = [(c, revision) for c, revision in (
                    (changed(self.entries, key, self._compute_one(self.kind, *key)), revision)
                    for key, revision in dirty.items()) if c is not None]
            found.sort(key=lambda item: (item[1] is None, item[1] or 0))  # the store's writes in their order
            late = []
            for change, revision in found:  # the store's writes, at their own revisions (increasing)
                at = position(revision, head=self.head, source=source_revision(change.after))
                if at is None:
                    late.append(change)
                    continue
                for event in record(self.entries, change, at):
                    self.window.append(event)
                self.head = at
            if late:  # the rest at one fresh revision, after them (it is at or above every object's own)
                at = await self.revisions.after(self.head)
                for change in late:
                    for event in record(self.entries, change, at):
                        self.window.append(event)
                self.head = at
            if found:
                for watcher in self.watchers:
                    watcher.set()

    async def catch_up(self) -> None:
        """Records what was noted before now (a list or a watch starts from there)."""
        for _ in range(CATCH_UP_ROUNDS):
            if not self.pending:
                return
            await self.refresh()

    def issued(self, resource_version: int) -> None:
        """A client holds this revision (a watch from it): a later change is recorded after it."""
        self.head = max(self.head, resource_version)

    def objects(self, namespace: str | None) -> list[dict[str, Any]]:
        """The current objects (namespace None: all), by namespace and name."""
        return [e.object for key, e in sorted(self.entries.items()) if namespace is None or key[0] == namespace]

    async def _run(self) -> None:
        """Records the changes while someone watches; with nobody watching, a change is only noted (`pending`)
        and recorded when a list or a watch asks, so an idle cache costs nothing until it stops."""
        try:
            while True:
                if not self.watchers:
                    if time.monotonic() - self._used > IDLE_SECONDS:
                        break
                    self._watched.clear()
                    await done_within(self._watched.wait(), 1.0)
                    continue
                heartbeat = not await done_within(self._wake.wait(), HEARTBEAT_SECONDS)
                if not heartbeat:
                    await asyncio.sleep(COALESCE_SECONDS)
                began = time.monotonic()
                try:
                    await self.refresh(everything=heartbeat)
                except Exception:  # a bug in one resource's view must not end its watches silently forever
                    log.exception("watch cache %s: computing the objects failed", self.kind.plural)
                # a costly computation (1,000 pods) runs at most a third of the time, whatever the rate of changes
                await asyncio.sleep(min(2 * (time.monotonic() - began), 1.0))
        finally:
            self.entries = {}
            self.window = Window(floor=0, capacity=self._capacity)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class WatchCaches:
    """The caches of every resource watched or listed, started on first use, over one store; `subscribe`
    registers a Note with the sources of change and returns what unregisters it."""

    def __init__(self, *, compute: Compute, compute_one: ComputeOne, store: Any,
                 subscribe: Callable[[Note], Callable[[], None]], capacity: int = DEFAULT_CAPACITY) -> None:
        self._compute = compute
        self._compute_one = compute_one
        self.store = store
        self.revisions = Revisions(store)
        self._subscribe = subscribe
        self._unsubscribe: Callable[[], None] | None = None
        self._capacity = capacity
        self._caches: dict[tuple[str, str], ResourceCache] = {}

    async def of(self, kind: Kind) -> ResourceCache:
        """The running cache of a resource (started now if it was not)."""
        cache = self._cache(kind)
        await self._start(cache)
        return cache

    def _cache(self, kind: Kind) -> ResourceCache:
        key = (kind.group, kind.plural)
        cache = self._caches.get(key)
        if cache is None:
            cache = self._caches[key] = ResourceCache(kind, compute=self._compute, compute_one=self._compute_one,
                                                      revisions=self.revisions, capacity=self._capacity)
        return cache

    async def _start(self, cache: ResourceCache) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self._subscribe(self._note)
        await cache.ensure()

    async def listed(self, kind: Kind, namespace: str | None,
                     resource_version: str) -> tuple[list[dict[str, Any]], int]:
        """A list's objects and its resourceVersion (a watch from it misses and repeats nothing after the list):
        with resourceVersion "0" the cache's objects as they are; else what was noted is recorded first (by a
        cache nobody watches, the resource computed again: no heartbeat finds what nobody announced)."""
        cache = self._cache(kind)
        if not cache.running:
            await self._start(cache)
        elif resource_version != "0":
            await cache.ensure()  # (it runs: only noted as used)
            if not cache.watchers:
                cache.note(None)
            await cache.catch_up()
        return cache.objects(namespace), cache.head

    def store_version(self, kind: str, namespace: str, name: str, version: str) -> str:
        """The stored version a client's resourceVersion stands for (what a write's optimistic concurrency
        compares with the store's): a revision at which the client read the object stands for the stored one as
        long as no write changed it since (meshd.api.watchwindow.current_version)."""
        stored = self.store.get(kind, namespace, name)
        if stored is None:
            return version
        return current_version(str(stored["metadata"].get("resourceVersion") or ""), version,
                               store_revision=self.revisions.current())

    def _note(self, kind: str | tuple[str, ...] | None, namespace: str, name: str, revision: int | None) -> None:
        kinds = (kind,) if isinstance(kind, str) else kind
        for cache in self._caches.values():
            what = affects(cache.kind.kind, kinds, name)
            if what == "one":
                cache.note((namespace, name), revision)
            elif what == "all":
                cache.note(None)

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for cache in self._caches.values():
            await cache.close()


def expired(message: str) -> dict[str, Any]:
    """The ERROR event that ends a watch from a resourceVersion too old: a 410 Expired Status."""
    return {"type": "ERROR", "object": status.status(410, message, reason="Expired")}


async def serve(cache: ResourceCache, query: listing.ListQuery, *, namespace: str | None, name: str | None,
                send: Send, heartbeat: float = HEARTBEAT_SECONDS) -> None:
    """One watch from the cache until its timeoutSeconds (or the client goes); `send` writes one event."""
    kind = cache.kind
    deadline = None if query.timeout_seconds is None else time.monotonic() + query.timeout_seconds

    def matches(obj: dict[str, Any]) -> bool:
        ns, n = key_of(obj)
        return (namespace is None or ns == namespace) and (name is None or n == name) \
            and listing.selected(query, obj)

    def out(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
        return {"type": event_type, "object": listing.object_body(kind, query, obj, now=datetime.now(UTC))}

    await cache.catch_up()  # what was noted before this watch (nobody watched): recorded before it starts
    try:
        begin = start(query.resource_version, send_initial_events=query.send_initial_events,
                      floor=cache.window.floor, head=max(cache.head, cache.revisions.current()))
    except TooOld as error:
        await send(expired(str(error)))
        return
    cache.issued(begin.after)  # (a revision the client read elsewhere, after this cache's last change)
    wake = asyncio.Event()
    cache.attach(wake)
    try:
        position = begin.after
        if begin.initial:
            for obj in [o for o in cache.objects(namespace) if matches(o)]:
                await send(out("ADDED", obj))
        if query.send_initial_events and query.bookmarks:
            await send({"type": "BOOKMARK", "object": bookmark(kind.kind, kind.api_version, position,
                                                               initial_events_end=True)})
        marked = time.monotonic()  # when the last bookmark went (one per heartbeat, busy or not)
        async for _woken in _wakes(wake, deadline, heartbeat):
            head = cache.head  # read with the events, no await between: they are exactly (position, head]
            try:
                events = cache.window.since(position)
            except TooOld as error:  # this watcher fell behind the window
                await send(expired(str(error)))
                return
            for event in events:
                seen = seen_by(event, matches)
                if seen is not None:
                    await send(out(*seen))
            position = max(position, head)
            if query.bookmarks and time.monotonic() - marked >= heartbeat:
                marked = time.monotonic()
                await send({"type": "BOOKMARK", "object": bookmark(kind.kind, kind.api_version, position,
                                                                   initial_events_end=False)})
    finally:
        cache.watchers.discard(wake)


async def _wakes(wake: asyncio.Event, deadline: float | None, heartbeat: float) -> AsyncIterator[bool]:
    """True when woken by a change, False on a heartbeat; ends at the deadline."""
    while True:
        wait = heartbeat if deadline is None else min(heartbeat, deadline - time.monotonic())
        if wait <= 0:
            return
        woken = await done_within(wake.wait(), wait)
        wake.clear()
        yield woken


def change_sources(controller: Any, registry: Any) -> Callable[[Note], Callable[[], None]]:
    """What the caches note: the store's writes (this agent's and, on etcd, every agent's: the object and its
    revision, as each becomes visible), the controller's notices (an object's status may have changed) and the
    endpoint registry's updates (a Service's addresses and Endpoints)."""
    def subscribe(note: Note) -> Callable[[], None]:
        def stored(event: Event) -> None:
            note(*object_key(event.object), event.resource_version)

        def endpoints(update: Any) -> None:  # one Service's: its addresses and its Endpoints
            key = update.service.key if hasattr(update.service, "key") else update.service
            note(("Service", "Endpoints"), key.namespace, key.name, None)

        stops = [controller.watch(lambda kind, namespace, name: note(kind, namespace, name, None)),
                 registry.listen(endpoints)]
        store = getattr(controller, "store", None)
        if store is not None:
            stops.append(store.listen(stored))

        def stop() -> None:
            for each in stops:
                each()
        return stop
    return subscribe


__all__ = ["ResourceCache", "Revisions", "WatchCaches", "change_sources", "expired", "parse_resource_version",
           "serve"]

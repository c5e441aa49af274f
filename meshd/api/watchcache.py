"""The API's watch cache, as the Kubernetes API server's: per resource, the objects as the API serves them and a
bounded window of their recent events, each with a resourceVersion from one monotonic clock. One refresher per
resource computes the objects once per change (woken by the store's watch, the controller and the endpoint
registry; coalesced) and every watcher of that resource reads the same window, filtered by its own namespace,
name and selectors. A watch from a resourceVersion the window no longer reaches ends with an ERROR event
carrying a 410 Expired Status ("too old resource version"), which kubectl and the client libraries answer by
listing again. The decisions are in meshd.api.watchwindow; this module is the thin, stateful part."""

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
    TooOld,
    Window,
    bookmark,
    canonical,
    diff,
    key_of,
    own_version,
    parse_resource_version,
    seen_by,
    stamped,
    start,
)

log = logging.getLogger(__name__)

COALESCE_SECONDS = 0.05  # a burst of changes is computed once
HEARTBEAT_SECONDS = 10.0  # a cache also recomputes this often (changes nobody announced), a watch sends a bookmark
IDLE_SECONDS = 30.0  # a cache with no watcher stops this long after its last use (the next use starts it afresh)

Compute = Callable[[Kind], list[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Clock:
    """The resourceVersions the caches give their events: increasing, never below the store's own, and from
    `epoch` on. The agent's epoch is the time it started in microseconds, so every version it gives is above
    those it gave before a restart (never written down): a watch from one of those is told 410, never resumed
    in another history."""

    def __init__(self, floor: Callable[[], int], *, epoch: int = 0) -> None:
        self._floor = floor
        self.value = max(floor(), epoch)

    def next(self) -> int:
        self.value = max(self.value + 1, self._floor())
        return self.value


class ResourceCache:
    """The watch cache of one resource (a Kind, every namespace)."""

    def __init__(self, kind: Kind, *, compute: Compute, clock: Clock, capacity: int = DEFAULT_CAPACITY) -> None:
        self.kind = kind
        self._compute = compute
        self._clock = clock
        self._capacity = capacity
        self.entries: dict[tuple[str, str], Entry] = {}
        self.window = Window(floor=0, capacity=capacity)
        self.head = 0  # every event of this resource up to here is in the window
        self.watchers: set[asyncio.Event] = set()
        self._wake = asyncio.Event()
        self._watched = asyncio.Event()  # set when a watcher comes
        self._task: asyncio.Task[None] | None = None
        self._used = time.monotonic()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def ensure(self, seed: list[dict[str, Any]] | None = None) -> None:
        """Starts the cache (one computation, or `seed`: the objects just computed) unless it runs; the window
        then begins at a fresh version, so a watch from before (when nothing recorded the changes) gets 410 and
        lists again."""
        self._used = time.monotonic()
        if self.running:
            return
        floor = self._clock.next()
        self.entries = {}
        for obj in self._compute(self.kind) if seed is None else seed:  # each at the cache's first version
            self.entries[key_of(obj)] = Entry(canonical(obj), stamped(obj, floor), own_version(obj))
        self.window = Window(floor=floor, capacity=self._capacity)
        self.head = floor
        self._task = asyncio.create_task(self._run(), name=f"watch cache {self.kind.plural}")

    def wake(self) -> None:
        self._wake.set()

    def attach(self, watcher: asyncio.Event) -> None:
        self.watchers.add(watcher)
        self._watched.set()

    @property
    def pending(self) -> bool:
        """Whether a change was announced that the cache has not computed yet."""
        return self._wake.is_set()

    def refresh(self, fresh: list[dict[str, Any]] | None = None) -> None:
        """Computes the objects now (or takes `fresh`, just computed); each change becomes an event in the window;
        the watchers are woken."""
        self._wake.clear()  # what is announced from here on is computed next time
        events = diff(self.entries, self._compute(self.kind) if fresh is None else fresh, self._clock.next)
        for event in events:
            self.window.append(event)
        self.head = self._clock.value
        if events:
            for watcher in self.watchers:
                watcher.set()

    def store_version(self, namespace: str, name: str, version: str) -> str:
        entry = self.entries.get((namespace, name))
        return entry.store_version(version) if entry is not None else version

    def objects(self, namespace: str | None) -> list[dict[str, Any]]:
        """The current objects (namespace None: all), by namespace and name."""
        return [e.object for key, e in sorted(self.entries.items()) if namespace is None or key[0] == namespace]

    async def _run(self) -> None:
        """Records the changes while someone watches; with nobody watching, a change is only noted (`pending`)
        and computed when a list or a watch asks, so an idle cache costs nothing until it stops."""
        try:
            while True:
                if not self.watchers:
                    if time.monotonic() - self._used > IDLE_SECONDS:
                        break
                    self._watched.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._watched.wait(), 1.0)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), HEARTBEAT_SECONDS)
                    await asyncio.sleep(COALESCE_SECONDS)
                began = time.monotonic()
                try:
                    self.refresh()
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
    """The caches of every resource watched or listed, started on first use, sharing one Clock; `subscribe`
    registers a wake-up with the sources of change and returns what unregisters it."""

    def __init__(self, *, compute: Compute, resource_version: Callable[[], int],
                 subscribe: Callable[[Callable[[], None]], Callable[[], None]],
                 capacity: int = DEFAULT_CAPACITY, epoch: int | None = None) -> None:
        self._compute = compute
        self.clock = Clock(resource_version, epoch=time.time_ns() // 1000 if epoch is None else epoch)
        self._subscribe = subscribe
        self._unsubscribe: Callable[[], None] | None = None
        self._capacity = capacity
        self._caches: dict[tuple[str, str], ResourceCache] = {}

    def of(self, kind: Kind) -> ResourceCache:
        """The running cache of a resource (started now if it was not)."""
        cache = self._cache(kind)
        self._start(cache)
        return cache

    def _cache(self, kind: Kind) -> ResourceCache:
        key = (kind.group, kind.plural)
        cache = self._caches.get(key)
        if cache is None:
            cache = self._caches[key] = ResourceCache(kind, compute=self._compute, clock=self.clock,
                                                      capacity=self._capacity)
        return cache

    def _start(self, cache: ResourceCache, seed: list[dict[str, Any]] | None = None) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self._subscribe(self._wake_all)
        cache.ensure(seed)

    def listed(self, kind: Kind, namespace: str | None, resource_version: str,
               live: Callable[[str | None], list[dict[str, Any]]]) -> tuple[list[dict[str, Any]], int]:
        """A list's objects and its resourceVersion (a watch from it misses nothing after the list): with
        resourceVersion "0" the cache's objects; else the objects computed now (`live`), the cold cache started
        with them (one computation for both)."""
        cache = self._cache(kind)
        if resource_version == "0":
            self._start(cache)
            return cache.objects(namespace), cache.head
        if not cache.running:
            everything = live(None)
            self._start(cache, seed=everything)
            return [o for o in everything if namespace is None or key_of(o)[0] == namespace], cache.head
        cache.ensure()  # (it runs: only noted as used)
        if not cache.pending:
            return live(namespace), cache.head
        everything = live(None)  # a change announced, not yet recorded: recorded first, from this same computation
        cache.refresh(everything)
        return [o for o in everything if namespace is None or key_of(o)[0] == namespace], cache.head

    def store_version(self, kind: str, namespace: str, name: str, version: str) -> str:
        """The store version a resourceVersion a client read from a watch or a cached list stands for (what a
        write's optimistic concurrency compares with the store's)."""
        for cache in self._caches.values():
            if cache.kind.kind == kind and cache.running:
                translated = cache.store_version(namespace, name, version)
                if translated != version:
                    return translated
        return version

    def _wake_all(self) -> None:
        for cache in self._caches.values():
            if cache.running:
                cache.wake()

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for cache in self._caches.values():
            await cache.close()


async def follow_store(store: Any, wake: Callable[[], None]) -> None:
    """Wakes the caches on every change the store publishes (this agent's writes and, on etcd, every agent's)."""
    while True:
        try:
            async for _ in store.watch(from_resource_version=store.resource_version):
                wake()
        except Exception as error:  # Expired (this reader fell behind): follow again from now
            log.debug("watch cache: the store's watch ended (%s); following again", error)
            wake()
            await asyncio.sleep(0.1)


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

    if cache.pending:  # announced changes nobody computed yet (no watcher): recorded before this one starts
        cache.refresh()
    try:
        begin = start(query.resource_version, send_initial_events=query.send_initial_events,
                      floor=cache.window.floor, head=cache.head)
    except TooOld as error:
        await send(expired(str(error)))
        return
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
        try:
            await asyncio.wait_for(wake.wait(), wait)
            woken = True
        except TimeoutError:
            woken = False
        wake.clear()
        yield woken


def change_sources(controller: Any, registry: Any) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """What wakes the caches: the controller (a status that may have changed), the endpoint registry and the
    store's watch."""
    def subscribe(wake: Callable[[], None]) -> Callable[[], None]:
        stops = [controller.watch(lambda *_: wake()), registry.listen(lambda _update: wake())]
        store = getattr(controller, "store", None)
        task = asyncio.create_task(follow_store(store, wake), name="watch cache: store") if store else None

        def stop() -> None:
            for each in stops:
                each()
            if task is not None:
                task.cancel()
        return stop
    return subscribe


__all__ = ["Clock", "ResourceCache", "WatchCaches", "change_sources", "expired", "follow_store",
           "parse_resource_version", "serve"]

"""Kubernetes-style Events (`describe` shows them) as `v1 Event` objects of the store, on one node (SQLite) as in
a cluster (etcd): every agent's controllers record into its EventLog, which writes them off the hot path (one
transaction for a burst), folds a repeat of an event into its `count` and `lastTimestamp` (the API server's
event correlator), and deletes events older than the TTL (Kubernetes' --event-ttl, 1 h) or beyond a bound.
Without a store (unit tests, or before the store opens) events are kept in a bounded memory log.

The conversions and the pruning decision are pure; `EventLog.run` is the thin writer."""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from meshd.store import AlreadyExists, Conflict, Create, Delete, NotFound, ObjectStore, StoreError, Update

log = logging.getLogger(__name__)

EVENT_TTL = 3600.0  # seconds an event is kept after it last happened (kube-apiserver's --event-ttl)
MAX_STORED = 5000  # at most this many events are kept; the oldest go first
PRUNE_EVERY = 60.0  # seconds between pruning passes
WRITE_BATCH = 64  # events written in one transaction (etcd's --max-txn-ops is 128)
_APPS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet")


@dataclass(frozen=True)
class Event:
    kind: str
    namespace: str
    name: str
    type: str  # Normal | Warning
    reason: str
    message: str
    time: float
    event_name: str = ""  # the Event's metadata.name when a client created it (else derived from the object)
    component: str = "meshd"  # who reported it (source.component, reportingController)
    count: int = 1


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def parse_time(text: Any) -> float | None:
    if not text:
        return None
    try:
        import calendar

        return float(calendar.timegm(time.strptime(str(text)[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


def event_object(e: Event, name: str) -> dict[str, Any]:
    """An event as the v1 Event object the store keeps (and the API serves). Pure."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"namespace": e.namespace, "name": name, "creationTimestamp": rfc3339(e.time)},
        "involvedObject": {"apiVersion": "apps/v1" if e.kind in _APPS else "v1", "kind": e.kind,
                           "namespace": e.namespace, "name": e.name},
        "type": e.type,
        "reason": e.reason,
        "message": e.message,
        "firstTimestamp": rfc3339(e.time),
        "lastTimestamp": rfc3339(e.time),
        "count": e.count,
        "source": {"component": e.component},
    }


def repeated(obj: Mapping[str, Any], when: float) -> dict[str, Any]:
    """The stored event once more (count + 1, lastTimestamp now), as the event correlator aggregates. Pure."""
    out = copy.deepcopy(dict(obj))
    out["metadata"].pop("resourceVersion", None)
    out["count"] = int(out.get("count") or 1) + 1
    out["lastTimestamp"] = rfc3339(when)
    return out


def last_seen(obj: Mapping[str, Any]) -> float:
    """When an event last happened (lastTimestamp, else eventTime, firstTimestamp, creationTimestamp)."""
    meta = obj.get("metadata") or {}
    for text in (obj.get("lastTimestamp"), obj.get("eventTime"), obj.get("firstTimestamp"),
                 meta.get("creationTimestamp")):
        seen = parse_time(text)
        if seen is not None:
            return seen
    return 0.0


def record_of(obj: Mapping[str, Any]) -> Event:
    """A stored event as the controllers' record of it. Pure."""
    involved = obj.get("involvedObject") or {}
    meta = obj.get("metadata") or {}
    return Event(str(involved.get("kind") or ""), str(meta.get("namespace") or ""), str(involved.get("name") or ""),
                 str(obj.get("type") or "Normal"), str(obj.get("reason") or ""), str(obj.get("message") or ""),
                 last_seen(obj), str(meta.get("name") or ""),
                 str((obj.get("source") or {}).get("component") or obj.get("reportingComponent") or ""),
                 int(obj.get("count") or 1))


def expired(events: Iterable[Mapping[str, Any]], *, now: float, ttl: float = EVENT_TTL,
            limit: int = MAX_STORED) -> list[tuple[str, str]]:
    """The events (namespace, name) to delete: those last seen more than `ttl` ago, and the oldest beyond
    `limit`. Pure."""
    aged = sorted(((last_seen(e), str(e["metadata"].get("namespace") or ""), str(e["metadata"]["name"]))
                   for e in events))
    out = [(ns, name) for seen, ns, name in aged if now - seen > ttl]
    kept = [(ns, name) for seen, ns, name in aged if now - seen <= ttl]
    return out + kept[: max(len(kept) - limit, 0)]


class EventLog:
    def __init__(self, *, limit: int = 2000, clock: Callable[[], float] = time.time, ttl: float = EVENT_TTL,
                 max_stored: int = MAX_STORED) -> None:
        self._events: deque[Event] = deque(maxlen=limit)  # without a store
        self._clock = clock
        self.ttl, self.max_stored = ttl, max_stored
        self._store: ObjectStore | None = None
        self._pending: dict[tuple[str, str], dict[str, Any]] = {}  # written next: (namespace, name) -> object
        self._recent: dict[tuple[str, ...], tuple[str, str]] = {}  # what an event repeats -> its object
        self._notify: Callable[[str, str, str], None] = lambda *_: None
        self._wake = asyncio.Event()
        self._serial = 0
        self.pruning: Callable[[], bool] = lambda: True  # in a cluster: the leader prunes

    @property
    def stored(self) -> bool:
        return self._store is not None

    def attach(self, store: ObjectStore, notify: Callable[[str, str, str], None]) -> None:
        """From now on events are store objects; what memory held goes to the store too."""
        self._store, self._notify = store, notify
        held = list(self._events)
        self._events.clear()
        for event in held:
            self._queue(event)

    # --- recording ----------------------------------------------------------------------------------

    def record(self, kind: str, namespace: str, name: str, type_: str, reason: str, message: str, *,
               event_name: str = "", component: str = "meshd") -> None:
        event = Event(kind, namespace, name, type_, reason, message, self._clock(), event_name, component)
        if self._store is None:
            self._events.append(event)
        else:
            self._queue(event)

    def _queue(self, event: Event) -> None:
        assert self._store is not None
        same = (event.kind, event.namespace, event.name, event.type, event.reason, event.message, event.component)
        where = self._recent.get(same) if not event.event_name else None
        if where is not None:
            current = self._pending.get(where) or self._store.get("Event", *where)
            if current is not None:
                self._pending[where] = repeated(current, event.time)
                self._wake.set()
                return
        name = event.event_name or self._name_for(event)
        if len(self._recent) > 4 * self.max_stored:  # bounded where this agent does not prune
            self._recent.clear()
        self._pending[(event.namespace, name)] = event_object(event, name)
        self._recent[same] = (event.namespace, name)
        self._wake.set()

    def _name_for(self, event: Event) -> str:
        """`<object>.<hex time>`, as client-go names them; unique among the stored and pending events."""
        assert self._store is not None
        stamp = int(event.time * 1e9)
        while True:
            name = f"{event.name}.{stamp + self._serial:x}"
            self._serial += 1
            if (event.namespace, name) not in self._pending and self._store.get("Event", event.namespace,
                                                                                  name) is None:
                return name

    # --- reading ------------------------------------------------------------------------------------

    def objects(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """The v1 Event objects (stored, then not written yet), oldest first."""
        if self._store is None:
            return [event_object(e, e.event_name or f"{e.name}.{int(e.time * 1000):x}")
                    for e in self._events if namespace is None or e.namespace == namespace]
        shown: dict[tuple[str, str], Mapping[str, Any]] = dict(self._store.scan("Event", namespace))
        shown.update((k, o) for k, o in self._pending.items() if namespace is None or k[0] == namespace)
        order = sorted(shown, key=lambda k: (int(shown[k]["metadata"].get("resourceVersion") or 1 << 62),
                                             last_seen(shown[k])))
        return [copy.deepcopy(dict(shown[k])) for k in order]

    def of(self, kind: str, namespace: str, name: str) -> list[Event]:
        return [e for e in self.in_namespace(namespace) if (e.kind, e.name) == (kind, name)]

    def in_namespace(self, namespace: str | None) -> list[Event]:
        if self._store is None:
            return [e for e in self._events if namespace is None or e.namespace == namespace]
        return [record_of(o) for o in self.objects(namespace)]

    # --- writing ------------------------------------------------------------------------------------

    async def run(self, settle: float = 0.05) -> None:
        """Writes what was recorded (a burst in one transaction), and prunes every PRUNE_EVERY seconds."""
        pruned = self._clock()
        while True:
            try:
                async with asyncio.timeout(PRUNE_EVERY):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            await asyncio.sleep(settle)
            await self.flush()
            if self._clock() - pruned >= PRUNE_EVERY:
                pruned = self._clock()
                if self.pruning():
                    await self.prune()

    async def flush(self) -> None:
        """Writes every pending event; what the store refuses for a while stays pending (tried again)."""
        store = self._store
        while store is not None and self._pending:
            batch = list(self._pending.items())[:WRITE_BATCH]  # pending (so listed) until written
            operations = [Update(o) if store.get("Event", *k) is not None else Create(o) for k, o in batch]
            try:
                await store.transaction(operations)
            except (AlreadyExists, Conflict, NotFound):  # deleted or made meanwhile through the API: one by one
                for operation in operations:
                    try:
                        await store.transaction([operation])
                    except (AlreadyExists, Conflict, NotFound):
                        pass
            except StoreError as error:
                log.warning("cannot write %d events (trying again): %s", len(batch), error)
                return
            for key, obj in batch:
                if self._pending.get(key) is obj:  # not recorded again meanwhile
                    del self._pending[key]
                self._notify("Event", *key)

    async def forget_namespace(self, namespace: str) -> None:
        """Deletes a deleted namespace's events (as the namespace controller deletes everything in it)."""
        store = self._store
        if store is None:
            self._events = deque((e for e in self._events if e.namespace != namespace), maxlen=self._events.maxlen)
            return
        self._pending = {k: o for k, o in self._pending.items() if k[0] != namespace}
        self._recent = {k: v for k, v in self._recent.items() if v[0] != namespace}
        keys = [key for key, _ in store.scan("Event", namespace)]
        for start in range(0, len(keys), WRITE_BATCH):
            try:
                await store.transaction([Delete("Event", *k) for k in keys[start:start + WRITE_BATCH]
                                         if store.get("Event", *k) is not None])
            except NotFound:
                continue  # deleted meanwhile
            except StoreError as error:  # the TTL takes them later
                log.warning("cannot delete the events of namespace %s: %s", namespace, error)
                return

    async def prune(self) -> None:
        """Deletes the events older than the TTL, and the oldest beyond the bound."""
        store = self._store
        if store is None:
            return
        gone = expired((o for _, o in store.scan("Event")), now=self._clock(), ttl=self.ttl, limit=self.max_stored)
        for start in range(0, len(gone), WRITE_BATCH):
            chunk = [k for k in gone[start:start + WRITE_BATCH] if store.get("Event", *k) is not None]
            try:
                await store.transaction([Delete("Event", *k) for k in chunk])
            except NotFound:
                continue  # deleted meanwhile: the next pass takes the rest
            except StoreError as error:
                log.warning("cannot prune events: %s", error)
                return
        if gone:
            dropped = set(gone)
            self._recent = {k: v for k, v in self._recent.items() if v not in dropped}
            log.debug("pruned %d events", len(gone))


__all__ = ["EVENT_TTL", "Event", "EventLog", "event_object", "expired", "record_of", "repeated"]

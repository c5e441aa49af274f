"""The object store shared by several agents through etcd, as Kubernetes' API servers share it: each object is
JSON under /meshd/registry/KIND/NAMESPACE/NAME, its resourceVersion is etcd's mod_revision, and every write is
one etcd transaction guarded by the mod_revision the writer last saw (compare-and-swap: of two agents racing,
one gets Conflict, never a silent overwrite).

Memory (the index and the watch cache of ObjectStore) is fed by one etcd watch only, in revision order, for
this agent's writes and every other agent's alike; a write returns once the watch has brought it back, so the
writer reads its own write. When etcd cannot be reached, reads keep answering from memory, writes fail with
EtcdUnavailable (nothing changes), and the watch reconnects from the last revision it saw (or lists again
when etcd compacted that far)."""

from __future__ import annotations

import asyncio
import base64
import builtins
import json
import logging
import ssl
from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import Counter, Gauge

from meshd.metrics import REGISTRY
from meshd.store.api import AlreadyExists, Conflict, Event, Key, NotFound, Operation, PersistError, object_key
from meshd.store.etcdclient import (
    Compacted,
    EtcdClient,
    EtcdNoQuorum,
    EtcdUnavailable,
    KeyValue,
    StoreTlsError,
    WatchEvent,
    b64,
    parse_store_url,
)
from meshd.store.etcdfailover import Outcome, Reach, reach_of, verdict
from meshd.store.etcdtls import NO_TLS, StoreTls, check_flags, client_context, scheme_reason
from meshd.store.index import ObjectIndex
from meshd.store.objects import DEFAULT_WATCH_CACHE, ObjectStore

log = logging.getLogger(__name__)

REGISTRY_PREFIX = "/meshd/registry/"
TICK_KEY = "~revision"  # under the prefix but no object's key: a put there only moves etcd's revision on (tick)
CATCH_UP_TIMEOUT = 10.0  # how long a write waits for the watch to bring it back before answering anyway
LEADERLESS_GRACE = 4.0  # seconds without a member with a raft leader before the store counts as lost

STORE_UP = Gauge("meshd_store_up", "1 while the shared store (etcd) answers this agent, else 0.", registry=REGISTRY)
STORE_DISCONNECTS = Counter("meshd_store_disconnects", "How many times this agent lost the shared store.",
                            registry=REGISTRY)


def etcd_key(key: Key, prefix: str = REGISTRY_PREFIX) -> str:
    kind, namespace, name = key
    return f"{prefix}{kind}/{namespace}/{name}"


def parse_etcd_key(text: str, prefix: str = REGISTRY_PREFIX) -> Key | None:
    parts = text.removeprefix(prefix).split("/")
    if not text.startswith(prefix) or len(parts) != 3 or not parts[0] or not parts[2]:
        return None
    return parts[0], parts[1], parts[2]


def decode(kv: KeyValue, prefix: str = REGISTRY_PREFIX) -> dict[str, Any] | None:
    """The object a key holds, with its resourceVersion (the mod_revision); None if it is not one."""
    key = parse_etcd_key(kv.key, prefix)
    if key is None and kv.key == prefix + TICK_KEY:
        return None
    try:
        obj = json.loads(kv.value)
        if key is None or not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
            raise ValueError("not an object with metadata under KIND/NAMESPACE/NAME")
    except ValueError as error:
        log.error("etcd: skipping the record %s (%s)", kv.key, error)
        return None
    obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"] = key
    obj["metadata"]["resourceVersion"] = str(kv.mod_revision)
    return obj


def encode(obj: Mapping[str, Any]) -> str:
    """What etcd keeps of an object: all of it but the resourceVersion (etcd's own revision says it)."""
    meta = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
    return b64(json.dumps({**obj, "metadata": meta}, separators=(",", ":")))


def own_write_revision(staged: Mapping[Key, Mapping[str, Any] | None], guarded: Mapping[Key, int],
                       responses: Sequence[Mapping[str, Any]], prefix: str = REGISTRY_PREFIX) -> int | None:
    """The revision of this very write when a transaction whose guards failed finds every key as it meant to
    leave it: the client sent it again after an answer it never got (a member timed out while etcd committed
    it), so the guards saw the write itself. None when any key differs (another writer came first)."""
    found = {}
    for key, response in zip(guarded, responses):
        kvs = (response.get("response_range") or {}).get("kvs") or []
        found[key] = KeyValue.parse(kvs[0]) if kvs else None
    revisions = []
    for key, kv in found.items():
        wanted = staged.get(key)
        if wanted is None:
            if kv is not None:
                return None
            continue
        if kv is None or kv.value != base64.b64decode(encode(wanted)):
            return None
        revisions.append(kv.mod_revision)
    return max(revisions) if revisions and len(set(revisions)) == 1 else None


class EtcdObjectStore(ObjectStore):
    """ObjectStore over etcd: the same reads, writes and watches, shared with every agent on that etcd."""

    def __init__(self, client: EtcdClient, *, prefix: str = REGISTRY_PREFIX,
                 watch_cache: int = DEFAULT_WATCH_CACHE) -> None:
        super().__init__(None, watch_cache=watch_cache)
        self.client = client
        self.prefix = prefix
        self.reachable = False
        self.last_error = ""
        # members answering without a raft leader for this long is an outage for this agent (shorter: an election)
        self.leaderless_grace = LEADERLESS_GRACE
        self._leaderless_since: float | None = None
        self._applied = asyncio.Condition()
        self._watch_task: asyncio.Task[None] | None = None
        self._stale_watches: set[asyncio.Task[None]] = set()  # cancelled, not yet ended

    @classmethod
    async def connect(cls, client: EtcdClient, *, prefix: str = REGISTRY_PREFIX,
                      watch_cache: int = DEFAULT_WATCH_CACHE) -> EtcdObjectStore:  # type: ignore[override]
        """Lists every object (EtcdUnavailable if no member answers), then follows the changes."""
        store = cls(client, prefix=prefix, watch_cache=watch_cache)
        kvs, revision = await client.range(prefix, prefix=True)
        objects = [o for o in (decode(kv, prefix) for kv in kvs) if o is not None]
        store._objects = ObjectIndex((object_key(o), o) for o in objects)
        store._rv = store._cache_floor = revision
        store._set_reachable(True, "")
        store._watch_task = asyncio.create_task(store._follow(), name="etcd watch")
        return store

    async def close(self) -> None:
        tasks = [*self._stale_watches, *([self._watch_task] if self._watch_task is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._watch_task = None
        await self.client.close()

    def _set_reachable(self, up: bool, error: str) -> None:
        if up != self.reachable:
            if up:
                log.info("the shared store answers again (%s)", ", ".join(self.client.endpoints))
            else:
                log.warning("the shared store is unreachable: %s; pods keep running, writes are refused until it "
                            "answers", error)
                STORE_DISCONNECTS.inc()
        self.reachable, self.last_error = up, error
        STORE_UP.set(1 if up else 0)

    async def probe(self, *, timeout: float) -> bool:
        """Whether a member with a raft leader answers a read within `timeout` (reachable and last_error set by
        the answer). The read is serializable (a member answers from its own state) and requires a leader
        (meshd.store.etcdfailover): a member cut off from the others (etcd's minority) refuses it, and the next
        one is asked; members without a leader for less than `leaderless_grace` are etcd electing one, not
        this agent losing the store. The watch's member is asked first: when it has no leader (or does not
        answer) and another member answers, the watch moves there."""
        loop = asyncio.get_running_loop()
        started, watched = loop.time(), self.client.watching
        body = {"key": b64(self.prefix + "\x00"), "serializable": True}
        try:
            async with asyncio.timeout(timeout):  # not wait_for: 3.11's may swallow a cancellation
                answer, attempts = await self.client.survey("/v3/kv/range", body, timeout=timeout, first=watched)
        except TimeoutError:
            answer, attempts = None, []
        if answer is not None and watched is not None and any(a.endpoint == watched for a in attempts):
            log.warning("etcd: the watch's member %s %s; watching through %s", watched,
                        next(a.text for a in attempts if a.endpoint == watched).removeprefix(watched + ": "),
                        self.client.current)
            self._restart_watch(rotate=False)
        detail = "; ".join(a.text for a in attempts) or f"no etcd member answered within {timeout:g}s"
        return self._observe(reach_of([a.outcome for a in attempts] + ([Outcome.ANSWERED] if answer else [])),
                             started, detail)

    def _observe(self, reach: Reach, started: float, detail: str) -> bool:
        """What a probe or a request found (meshd.store.etcdfailover.verdict) as reachable and last_error."""
        found = verdict(reach, since=self._leaderless_since, started=started, now=asyncio.get_running_loop().time(),
                        grace=self.leaderless_grace, detail=detail)
        if found.leaderless_since is not None and self._leaderless_since is None:
            log.info("etcd: no member this agent reaches has a raft leader (%s); an election, unless it lasts "
                     "%gs", detail, self.leaderless_grace)
        self._leaderless_since = found.leaderless_since
        self._set_reachable(found.up, found.reason)
        return found.up

    def _failed(self, error: EtcdUnavailable, started: float) -> None:
        """A request no member could serve: lost at once when none answered; when members answered without a
        raft leader, only once that lasted longer than the grace."""
        self._observe(Reach.LEADERLESS if isinstance(error, EtcdNoQuorum) else Reach.SILENT, started, str(error))

    # --- writes -----------------------------------------------------------------------------------

    async def transaction(self, operations: Sequence[Operation]) -> builtins.list[Mapping[str, Any]]:
        """One etcd transaction, guarded by each key's mod_revision as this agent last saw it."""
        wanted = [int(v) for v in (_version_of(op) for op in operations) if v]
        if wanted:  # a resourceVersion read from another agent may be newer than this one has seen yet
            await self._caught_up(max(wanted))
        async with self._lock:
            staged, events, _ = self._stage(operations)
            if not events:
                return []
            compare, success, failure = [], [], []
            guarded: dict[Key, int] = {}  # each key written, and the mod_revision it must have (0: absent)
            for key, value in staged.items():
                current = self._objects.get(key)
                if current is None and value is None:
                    continue  # made and deleted in this one batch
                name = b64(etcd_key(key, self.prefix))
                if current is None:
                    compare.append({"key": name, "target": "CREATE", "result": "EQUAL", "create_revision": "0"})
                else:
                    compare.append({"key": name, "target": "MOD", "result": "EQUAL",
                                    "mod_revision": current["metadata"]["resourceVersion"]})
                success.append({"request_delete_range": {"key": name}} if value is None else
                               {"request_put": {"key": name, "value": encode(value)}})
                failure.append({"request_range": {"key": name}})
                guarded[key] = 0 if current is None else int(current["metadata"]["resourceVersion"])
            started = asyncio.get_running_loop().time()
            try:
                succeeded, revision, responses = await self.client.txn(compare, success, failure)
            except EtcdUnavailable as error:
                self._failed(error, started)
                raise
            self._answered(started)
        if not succeeded:
            revision = own_write_revision(staged, guarded, responses, self.prefix) or 0
            if not revision:
                await self._refused(guarded, responses)
        for event in events:
            event.object["metadata"]["resourceVersion"] = str(revision)
        await self._caught_up(revision)
        return [event.object for event in events]

    async def tick(self) -> int:
        """A new etcd revision that changes no object (a put of TICK_KEY), once this agent's memory has it."""
        put = {"request_put": {"key": b64(self.prefix + TICK_KEY), "value": b64("")}}
        started = asyncio.get_running_loop().time()
        try:
            _, revision, _ = await self.client.txn([], [put])
        except EtcdUnavailable as error:
            self._failed(error, started)
            raise
        self._answered(started)
        await self._caught_up(revision)
        return revision

    async def _refused(self, guarded: dict[Key, int], responses: list[dict[str, Any]]) -> None:
        """Another agent wrote one of these keys first: waits until memory has its write, then says which."""
        latest: dict[Key, KeyValue | None] = {}
        for key, response in zip(guarded, responses):
            kvs = (response.get("response_range") or {}).get("kvs") or []
            latest[key] = KeyValue.parse(kvs[0]) if kvs else None
        seen = [kv.mod_revision for kv in latest.values() if kv is not None]
        if seen:
            await self._caught_up(max(seen))
        for key, kv in latest.items():
            kind, namespace, name = key
            if not guarded[key] and kv is not None:
                raise AlreadyExists(f'{kind} "{name}" already exists in namespace "{namespace}"')
            if guarded[key] and kv is None:
                raise NotFound(f'{kind} "{name}" not found in namespace "{namespace}"')
        kind, _, name = next((k for k, kv in latest.items() if kv is None or kv.mod_revision != guarded[k]),
                             next(iter(guarded)))
        raise Conflict(f'Operation cannot be fulfilled on {kind} "{name}": the object has been modified; '
                       f"please apply your changes to the latest version and try again")

    async def _caught_up(self, revision: int) -> None:
        """Waits until the watch has applied `revision`; when it misses it, the watch moves to another member
        (the one it follows may be cut off from the others, or hung) and it waits once more. Bounded: a broken
        watch does not hang a writer."""
        for attempt in range(2):
            if self._rv >= revision:
                return
            async with self._applied:
                try:
                    async with asyncio.timeout(CATCH_UP_TIMEOUT):  # not wait_for: 3.11's may swallow a cancel
                        await self._applied.wait_for(lambda: self._rv >= revision)
                    return
                except asyncio.TimeoutError:
                    log.warning("etcd: revision %d not seen by the watch within %.0fs%s", revision, CATCH_UP_TIMEOUT,
                                "; watching through another member" if attempt == 0 else "")
            if attempt == 0:
                self._restart_watch()

    def _answered(self, started: float) -> None:
        """After a write etcd committed: the store is up (a member with a leader took it); when the watch's
        member failed it (no leader, or no answer) and another member took it, the watch moves to that one (the
        write would not come back through a member cut off from the others)."""
        self._observe(Reach.LEADER, started, "")
        watched = self.client.watching
        if watched is not None and watched in self.client.suspects:
            log.info("etcd: the watch's member %s failed a write another member took; watching through %s",
                     watched, self.client.current)
            self._restart_watch(rotate=False)

    def _restart_watch(self, *, rotate: bool = True) -> None:
        """The watch started again from the revision memory has: on the next member (`rotate`), or on the
        client's current one."""
        if self._watch_task is not None and not self._watch_task.done() and \
                asyncio.current_task() is not self._watch_task:  # the watch's own probe: it moves on by itself
            self._watch_task.cancel()
            self._stale_watches.add(self._watch_task)
            self._watch_task.add_done_callback(self._stale_watches.discard)
            self.client.watching = None
            if rotate:
                self.client.rotate()
            self._watch_task = asyncio.create_task(self._follow(), name="etcd watch")

    # --- the watch --------------------------------------------------------------------------------

    async def _follow(self, retry: float = 0.5, retry_max: float = 5.0) -> None:
        delay = retry
        while True:
            try:
                async for batch in self.client.watch(self.prefix, self._rv + 1):
                    self._set_reachable(True, "")
                    delay = retry
                    await self._apply(batch)
                raise EtcdUnavailable("the etcd watch stream ended")
            except Compacted as error:
                log.warning("etcd: %s; listing again", error)
                try:
                    await self._relist()
                except EtcdUnavailable as unavailable:
                    self._set_reachable(False, str(unavailable))
            except EtcdUnavailable as error:
                if await self.probe(timeout=5.0):  # another member answers: the watch moves there, no outage
                    log.info("etcd: %s; watching through the next member", error)
                    await asyncio.sleep(0.05 if delay == retry else delay)  # at once the first time
                    delay = min(delay * 2, retry_max)
                    continue
                log.debug("etcd watch: %s", error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, retry_max)
                await self.probe(timeout=5.0)  # so the store reports itself back up even when nothing changes

    async def _apply(self, batch: list[WatchEvent]) -> None:
        events: builtins.list[Event] = []
        for change in batch:
            key = parse_etcd_key(change.kv.key, self.prefix)
            if key is None:
                continue
            if change.deleted:
                current = self._objects.pop(key, None)
                if current is not None:
                    meta = {**current["metadata"], "resourceVersion": str(change.kv.mod_revision)}
                    events.append(Event("DELETED", {**current, "metadata": meta}))
            else:
                obj = decode(change.kv, self.prefix)
                if obj is not None:
                    events.append(Event("MODIFIED" if key in self._objects else "ADDED", obj))
                    self._objects[key] = obj
        self._rv = max([self._rv, *(c.kv.mod_revision for c in batch)])
        self._publish(events)
        async with self._applied:
            self._applied.notify_all()

    async def _relist(self) -> None:
        """After a compaction: the differences between memory and etcd as events, then the watch from there."""
        kvs, revision = await self.client.range(self.prefix, prefix=True)
        fresh = ObjectIndex()
        for kv in kvs:
            obj = decode(kv, self.prefix)
            if obj is not None:
                fresh[object_key(obj)] = obj
        events = []
        for key, obj in fresh.items():
            old = self._objects.get(key)
            if old is None or old["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]:
                events.append(Event("ADDED" if old is None else "MODIFIED", obj))
        for key in [k for k in self._objects if k not in fresh]:
            old = self._objects[key]
            events.append(Event("DELETED", {**old, "metadata": {**old["metadata"], "resourceVersion": str(revision)}}))
        self._objects = fresh
        self._cache.clear()  # the events in between are lost: a watch resuming from before must list again
        self._rv = self._cache_floor = revision
        self._publish(events)
        async with self._applied:
            self._applied.notify_all()


def _version_of(op: Operation) -> str | None:
    if hasattr(op, "obj"):
        return str((op.obj.get("metadata") or {}).get("resourceVersion") or "") or None  # type: ignore[union-attr]
    return getattr(op, "resource_version", None) or None


async def open_etcd_store(endpoints: list[str], *, attempts: int = 1, ssl_context: ssl.SSLContext | None = None,
                          tls: StoreTls = NO_TLS) -> EtcdObjectStore:
    """The shared store on these etcd members; PersistError naming them when none answers, at once (no retry)
    when they disagree on TLS (StoreTlsError: wrong CA, no client certificate, http:// to a TLS etcd...)."""
    client = EtcdClient(endpoints, ssl_context=ssl_context, tls=tls)
    for attempt in range(attempts):
        try:
            return await EtcdObjectStore.connect(client)
        except StoreTlsError:
            await client.close()
            raise
        except EtcdUnavailable as error:
            if attempt == 0 and (reason := await scheme_reason(endpoints, client.verifying_context(), tls)):
                await client.close()
                raise StoreTlsError(reason) from None
            if attempt == attempts - 1:
                await client.close()
                raise PersistError(f"cannot reach the store at {', '.join(endpoints)}: {error}") from None
            await asyncio.sleep(min(1.0 * (attempt + 1), 5.0))
    raise AssertionError("unreachable")


async def store_problem(url: str, tls: StoreTls = NO_TLS) -> str | None:
    """Before an agent starts anything: the one-line reason its --store and TLS files cannot work (flags that do
    not go together, a file missing or wrong, a TLS disagreement with etcd); None when they can, or when etcd
    merely does not answer yet (the agent's start waits for it, and says so)."""
    try:
        endpoints = parse_store_url(url)
        check_flags(endpoints, tls)
        context = await asyncio.to_thread(client_context, tls) if endpoints[0].startswith("https://") else None
    except ValueError as error:
        return str(error)
    client = EtcdClient(endpoints, ssl_context=context, tls=tls)
    try:
        await client.range(REGISTRY_PREFIX + "\x00")
    except StoreTlsError as error:
        return str(error)
    except EtcdUnavailable:
        return await scheme_reason(endpoints, client.verifying_context(), tls)
    finally:
        await client.close()
    return None


__all__ = ["REGISTRY_PREFIX", "EtcdObjectStore", "decode", "encode", "etcd_key", "open_etcd_store",
           "parse_etcd_key", "store_problem"]

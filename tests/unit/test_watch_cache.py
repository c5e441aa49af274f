"""The watch cache's thin part (meshd.api.watchcache) over a plain list of objects and a store in memory: a list's
resourceVersion, then watches from it, from an old one (410 Expired), and with a selector, all served from one
window; every version is one of the store's, a store write's change is recorded at the write's own revision,
and one object's change computes that object alone."""

from __future__ import annotations

import asyncio

from meshd.api import listing, watchcache
from meshd.api.kinds import KINDS
from meshd.store import ObjectStore, PersistError

POD = next(k for k in KINDS if k.plural == "pods" and not k.group)


def pod(name: str, *, phase: str = "Running", app: str = "web") -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "status": {"phase": phase},
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": {"app": app}}}


class Objects:
    def __init__(self) -> None:
        self.pods: dict[str, dict] = {}
        self.computed = 0
        self.computed_one = 0

    def compute(self, kind) -> list[dict]:
        self.computed += 1
        return [self.pods[n] for n in sorted(self.pods)]

    def compute_one(self, kind, namespace: str, name: str) -> dict | None:
        self.computed_one += 1
        return self.pods.get(name)


def caches(objects: Objects, *, capacity: int = 100, store: ObjectStore | None = None) -> watchcache.WatchCaches:
    return watchcache.WatchCaches(compute=objects.compute, compute_one=objects.compute_one,
                                  store=store if store is not None else ObjectStore(), subscribe=lambda note: lambda: None,
                                  capacity=capacity)


async def watch(cache: watchcache.ResourceCache, query: listing.ListQuery, out: list[dict], *,
                namespace: str | None = "default") -> None:
    async def send(message: dict) -> None:
        out.append(message)
    await watchcache.serve(cache, query, namespace=namespace, name=None, send=send, heartbeat=0.05)


def brief(events: list[dict]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"].get("name") or e["object"].get("reason", "")) for e in events]


async def until(condition, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_watch_from_a_lists_version_replays_exactly_what_followed():
    objects = Objects()
    objects.pods["a"] = pod("a")
    all_caches = caches(objects)
    try:
        cache = await all_caches.of(POD)
        listed = cache.head
        objects.pods["b"] = pod("b")
        objects.pods["a"] = pod("a", phase="Failed")
        await cache.refresh(everything=True)
        del objects.pods["b"]
        await cache.refresh(everything=True)
        out: list[dict] = []
        task = asyncio.create_task(watch(cache, listing.ListQuery(resource_version=str(listed)), out))
        await until(lambda: len(out) == 3)
        assert brief(out) == [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "b")]
        versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in out]
        assert versions == sorted(versions) and versions[0] > listed
        objects.pods["c"] = pod("c")  # then live
        await cache.refresh(everything=True)
        await until(lambda: len(out) == 4)
        assert brief(out)[3] == ("ADDED", "c")
        task.cancel()
    finally:
        await all_caches.close()


async def test_a_watch_from_a_version_the_window_no_longer_holds_gets_410_expired():
    objects = Objects()
    all_caches = caches(objects, capacity=2)
    try:
        cache = await all_caches.of(POD)
        listed = cache.head
        for name in "abc":
            objects.pods[name] = pod(name)
            await cache.refresh(everything=True)
        out: list[dict] = []
        await watch(cache, listing.ListQuery(resource_version=str(listed)), out)  # ends by itself
        (event,) = out
        assert event["type"] == "ERROR"
        assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
        assert "too old resource version" in event["object"]["message"]
    finally:
        await all_caches.close()


async def test_initial_events_a_selector_and_the_bookmark_that_ends_the_replay():
    objects = Objects()
    objects.pods.update(a=pod("a"), b=pod("b", app="db"))
    all_caches = caches(objects)
    try:
        cache = await all_caches.of(POD)
        query = listing.ListQuery(labels=listing.parse_selector("app=web"), send_initial_events=True, bookmarks=True)
        out: list[dict] = []
        task = asyncio.create_task(watch(cache, query, out))
        await until(lambda: len(out) >= 2)
        assert brief(out[:2]) == [("ADDED", "a"), ("BOOKMARK", "")]
        assert out[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
        objects.pods["b"] = pod("b")  # comes into the selection
        objects.pods["a"] = pod("a", app="db")  # leaves it
        await cache.refresh(everything=True)
        await until(lambda: [e for e in out[2:] if e["type"] != "BOOKMARK"] != [])
        await until(lambda: len([e for e in out[2:] if e["type"] != "BOOKMARK"]) == 2)
        assert [e for e in brief(out[2:]) if e[0] != "BOOKMARK"] == [("DELETED", "a"), ("ADDED", "b")]
        task.cancel()
    finally:
        await all_caches.close()


async def test_a_hundred_watchers_cost_one_computation_per_change():
    objects = Objects()
    all_caches = caches(objects)
    try:
        cache = await all_caches.of(POD)
        outs: list[list[dict]] = [[] for _ in range(100)]
        tasks = [asyncio.create_task(watch(cache, listing.ListQuery(resource_version=str(cache.head)), o))
                 for o in outs]
        await asyncio.sleep(0)
        before = objects.computed
        for i in range(10):
            objects.pods[f"p{i}"] = pod(f"p{i}")
            await cache.refresh(everything=True)
        await until(lambda: all(len([e for e in o if e["type"] == "ADDED"]) == 10 for o in outs))
        assert objects.computed - before == 10
        for task in tasks:
            task.cancel()
    finally:
        await all_caches.close()


async def test_a_list_on_a_cold_cache_computes_once_and_a_watch_from_its_version_follows_it():
    objects = Objects()
    objects.pods.update(a=pod("a"), b=pod("b"))
    all_caches = caches(objects)
    try:
        items, version = await all_caches.listed(POD, "default", "")
        assert [o["metadata"]["name"] for o in items] == ["a", "b"] and objects.computed == 1
        cache = await all_caches.of(POD)
        assert cache.head == version == all_caches.store.resource_version  # a revision of the store
        objects.pods["c"] = pod("c")
        cache.note(("default", "c"))  # announced, not yet recorded: the next list records it first
        _, later = await all_caches.listed(POD, "default", "")
        assert later > version
        cached, _ = await all_caches.listed(POD, None, "0")  # "0": from the cache, no computation
        assert [o["metadata"]["name"] for o in cached] == ["a", "b", "c"]
        out: list[dict] = []
        await watch(cache, listing.ListQuery(resource_version=str(version), timeout_seconds=0.2), out)
        assert brief(out) == [("ADDED", "c")]
    finally:
        await all_caches.close()


async def test_a_store_write_is_recorded_at_its_own_revision_and_computes_that_object_alone():
    objects = Objects()
    objects.pods.update(a=pod("a"), b=pod("b"))
    store = ObjectStore()
    all_caches = caches(objects, store=store)
    try:
        cache = await all_caches.of(POD)
        listed = cache.head
        computed = objects.computed
        written = await store.create({"kind": "Pod", "metadata": {"namespace": "default", "name": "c"}})
        revision = int(written["metadata"]["resourceVersion"])
        objects.pods["c"] = pod("c") | {"metadata": {**pod("c")["metadata"], "resourceVersion": str(revision)}}
        cache.note(("default", "c"), revision)
        out: list[dict] = []
        await watch(cache, listing.ListQuery(resource_version=str(listed), timeout_seconds=0.2), out)
        assert brief(out) == [("ADDED", "c")]
        assert out[0]["object"]["metadata"]["resourceVersion"] == str(revision)  # the write's own
        assert (objects.computed, objects.computed_one) == (computed, 1)  # one object, not the resource
        # a status computed live, no store write: a fresh revision of the store, after everything a client holds
        objects.pods["a"] = pod("a", phase="Failed")
        cache.note(("default", "a"))
        out = []
        await watch(cache, listing.ListQuery(resource_version=str(revision), timeout_seconds=0.2), out)
        assert brief(out) == [("MODIFIED", "a")]
        assert int(out[0]["object"]["metadata"]["resourceVersion"]) == store.resource_version > revision
        # which a write with it stands for the stored object's version (no other write since)
        assert all_caches.store_version("Pod", "default", "c", out[0]["object"]["metadata"]["resourceVersion"]) \
            == str(revision)
    finally:
        await all_caches.close()


async def test_bookmarks_come_once_a_heartbeat_with_the_watchers_version():
    objects = Objects()
    all_caches = caches(objects)
    try:
        cache = await all_caches.of(POD)
        out: list[dict] = []
        await watch(cache, listing.ListQuery(resource_version=str(cache.head), bookmarks=True, timeout_seconds=0.3),
                    out)
        assert out and {e["type"] for e in out} == {"BOOKMARK"}
        assert all(int(e["object"]["metadata"]["resourceVersion"]) == cache.head for e in out)
    finally:
        await all_caches.close()


async def test_a_fresh_revision_is_the_current_one_a_tick_or_while_the_store_makes_none_the_next():
    class Store:
        resource_version = 7
        ticks = 0
        failing = False

        async def tick(self) -> int:
            if self.failing:
                raise PersistError("etcd unreachable")
            self.ticks += 1
            self.resource_version += 1
            return self.resource_version

    store = Store()
    revisions = watchcache.Revisions(store)
    assert await revisions.after(5) == 7 and store.ticks == 0  # after the head already: no tick
    assert await revisions.after(7) == 8 and store.ticks == 1  # the head is the store's: a new one
    store.failing = True
    assert await revisions.after(8) == 9  # reads and watches go on; the store's next write is at 9


async def test_a_version_an_earlier_cache_gave_is_410_for_the_next_one():
    objects = Objects()
    objects.pods["a"] = pod("a")
    store = ObjectStore()
    first = caches(objects, store=store)
    _, version = await first.listed(POD, None, "")
    await first.close()  # (the agent restarts: what changed meanwhile was recorded by nobody)
    objects.pods["a"] = pod("a", phase="Failed")
    second = caches(objects, store=store)
    try:
        cache = await second.of(POD)
        assert cache.window.floor > version == store.resource_version - 1
        out: list[dict] = []
        await watch(cache, listing.ListQuery(resource_version=str(version), timeout_seconds=0.2), out)
        assert [(e["type"], e["object"].get("code")) for e in out] == [("ERROR", 410)]
    finally:
        await second.close()


async def test_many_store_writes_computed_at_once_keep_each_its_own_revision():
    objects = Objects()
    store = ObjectStore()
    all_caches = caches(objects, store=store)
    try:
        cache = await all_caches.of(POD)
        listed = cache.head
        revisions = {}
        for i in range(100):  # more than are computed one by one: the resource is computed at once
            written = await store.create({"kind": "Pod", "metadata": {"namespace": "default", "name": f"p{i:03}"}})
            revisions[f"p{i:03}"] = version = written["metadata"]["resourceVersion"]
            objects.pods[f"p{i:03}"] = pod(f"p{i:03}") | {"metadata": {**pod(f"p{i:03}")["metadata"],
                                                                       "resourceVersion": version}}
            cache.note(("default", f"p{i:03}"), int(version))
        out: list[dict] = []
        await watch(cache, listing.ListQuery(resource_version=str(listed), timeout_seconds=0.2), out)
        assert objects.computed_one == 0
        assert [(e["object"]["metadata"]["name"], e["object"]["metadata"]["resourceVersion"]) for e in out] == \
            sorted(revisions.items(), key=lambda item: int(item[1]))
    finally:
        await all_caches.close()

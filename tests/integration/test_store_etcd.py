"""The shared object store on a real etcd (Debian's etcd-server): two stores (two agents) see each other's
objects in lists and watches, a lost race is a Conflict (never a silent overwrite), etcd going away refuses
writes and keeps reads, and the store reconnects; with three members, losing one changes nothing."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from meshd.store import AlreadyExists, Conflict, Create, Expired, PersistError
from meshd.store.etcd import EtcdObjectStore, open_etcd_store
from meshd.store.etcdclient import EtcdClient, EtcdNoQuorum, parse_store_url
from tests.integration.agent_harness import eventually
from tests.integration.etcd_harness import EtcdCluster


@pytest.fixture
async def two(etcd: EtcdCluster) -> AsyncIterator[tuple[EtcdObjectStore, EtcdObjectStore]]:
    a, b = await open_etcd_store(etcd.endpoints), await open_etcd_store(etcd.endpoints)
    yield a, b
    await a.close()
    await b.close()


def service(name: str, port: int = 80, namespace: str = "default") -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"ports": [{"port": port}]}}


async def test_each_store_sees_the_others_objects_in_lists_and_watches(two: tuple) -> None:
    a, b = two
    watch = b.watch("Service", "default")
    created = await a.create(service("web"))
    assert created["metadata"]["uid"] and int(created["metadata"]["resourceVersion"]) > 0
    event = await asyncio.wait_for(anext(watch), 30)
    assert (event.type, event.object["metadata"]["uid"]) == ("ADDED", created["metadata"]["uid"])
    assert event.object["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert [o["metadata"]["name"] for o in b.list("Service")] == ["web"]
    updated = await b.update({**service("web", 81), "metadata": dict(b.get("Service", "default", "web")["metadata"])})
    await eventually(lambda: a.get("Service", "default", "web")["spec"]["ports"] == [{"port": 81}])
    assert a.get("Service", "default", "web")["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]
    assert int(updated["metadata"]["generation"]) == 2
    await a.delete("Service", "default", "web")
    assert (await asyncio.wait_for(anext(watch), 30)).type == "MODIFIED"
    assert (await asyncio.wait_for(anext(watch), 30)).type == "DELETED"
    await watch.aclose()
    await eventually(lambda: b.get("Service", "default", "web") is None)


async def test_a_tick_is_a_new_etcd_revision_every_agent_sees_and_no_object(two: tuple, etcd: EtcdCluster) -> None:
    a, b = two
    created = await a.create(service("ticked"))
    seen: list = []
    stop = b.listen(seen.append)
    revision = await a.tick()  # what an agent's watch cache records a status computed live at
    assert revision > int(created["metadata"]["resourceVersion"]) and a.resource_version >= revision
    await eventually(lambda: b.resource_version >= revision)
    stop()
    assert [event.object["metadata"]["name"] for event in seen] in ([], ["ticked"])  # the tick is no object
    assert [o["metadata"]["name"] for o in b.list(None)] == ["ticked"]
    third = await open_etcd_store(etcd.endpoints)  # a store that lists after it: the tick's key is no record
    try:
        assert [o["metadata"]["name"] for o in third.list(None)] == ["ticked"]
        assert third.resource_version >= revision
    finally:
        await third.close()


async def test_two_writers_racing_on_one_version_one_gets_conflict(two: tuple) -> None:
    a, b = two
    first = await a.create(service("race"))
    await eventually(lambda: b.get("Service", "default", "race") is not None)
    meta = dict(first["metadata"])
    results = await asyncio.gather(a.update({**service("race", 1), "metadata": meta}),
                                   b.update({**service("race", 2), "metadata": meta}), return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "dict"], results
    winner = next(r for r in results if isinstance(r, dict))
    await eventually(lambda: b.get("Service", "default", "race")["spec"] == winner["spec"])
    assert a.get("Service", "default", "race")["spec"] == winner["spec"]
    # a write without a resourceVersion from a store that has not seen the latest one is refused too
    with pytest.raises((Conflict, AlreadyExists)):
        await asyncio.gather(a.create(service("once")), b.create(service("once")))


async def test_without_etcd_reads_answer_writes_are_refused_and_it_reconnects(etcd: EtcdCluster) -> None:
    store = await open_etcd_store(etcd.endpoints)
    other = await open_etcd_store(etcd.endpoints)
    try:
        await store.create(service("kept"))
        await asyncio.to_thread(etcd.stop)
        with pytest.raises(PersistError, match="unreachable"):
            await store.create(service("refused"))
        assert store.get("Service", "default", "kept") is not None
        await eventually(lambda: not store.reachable)
        await asyncio.to_thread(etcd.restart, etcd.members[0])
        await eventually(lambda: other.reachable and store.reachable, timeout=60)
        await other.create(service("meanwhile"))
        await eventually(lambda: store.get("Service", "default", "meanwhile") is not None, timeout=60)
        await store.create(service("after"))
        assert store.get("Service", "default", "refused") is None
    finally:
        await store.close()
        await other.close()


async def test_three_members_losing_one_changes_nothing(tmp_path: Path) -> None:
    etcd = await asyncio.to_thread(lambda: EtcdCluster(tmp_path / "etcd3", size=3).start())
    try:
        a = await open_etcd_store(parse_store_url(etcd.url))
        b = await open_etcd_store(list(reversed(etcd.endpoints)))
        try:
            await a.create(service("before"))
            await asyncio.to_thread(etcd.members[0].stop)  # the member `a` talks to first
            await a.create(service("after"))
            await eventually(lambda: b.get("Service", "default", "after") is not None, timeout=60)
            await b.create(service("from-b"))
            await eventually(lambda: a.get("Service", "default", "from-b") is not None, timeout=60)
        finally:
            await a.close()
            await b.close()
    finally:
        await asyncio.to_thread(etcd.stop)


async def test_the_client_fails_over_and_names_every_endpoint(etcd: EtcdCluster) -> None:
    client = EtcdClient(["http://127.0.0.1:1", *etcd.endpoints])
    try:
        kvs, revision = await client.range("/meshd/none", prefix=True)
        assert kvs == [] and revision >= 1
    finally:
        await client.close()
    dead = EtcdClient(["http://127.0.0.1:1", "http://127.0.0.1:2"])
    try:
        with pytest.raises(PersistError, match=r"127\.0\.0\.1:1.*127\.0\.0\.1:2"):
            await dead.range("/x")
    finally:
        await dead.close()


async def test_a_stuck_member_is_routed_around(tmp_path: Path) -> None:
    """A member that stops answering without closing anything (SIGSTOP, as a hung or cut-off machine): writes
    go through another member and the watch moves to another one when it misses a write."""
    etcd = await asyncio.to_thread(lambda: EtcdCluster(tmp_path / "etcd3", size=3).start())
    stuck = etcd.members[0].proc
    assert stuck is not None
    a = await open_etcd_store(etcd.endpoints)  # talks to member 0 first, for writes and its watch
    b = await open_etcd_store(list(reversed(etcd.endpoints)))
    try:
        await a.create(service("before"))
        stuck.send_signal(signal.SIGSTOP)
        await retried(lambda: a.create(service("during")))  # if it led raft, the others elect anew
        await eventually(lambda: a.get("Service", "default", "during") is not None, timeout=60)
        await retried(lambda: b.create(service("from-b")))
        await eventually(lambda: a.get("Service", "default", "from-b") is not None, timeout=60)
    finally:
        stuck.send_signal(signal.SIGCONT)
        await a.close()
        await b.close()
        await asyncio.to_thread(etcd.stop)


async def test_a_member_left_alone_refuses_for_want_of_a_leader_and_the_store_counts_as_lost_past_the_grace(
        tmp_path: Path) -> None:
    """Two of three members gone: the one left answers serializable reads from its own state, but every request
    of meshd's client requires a raft leader, so it refuses them ("etcdserver: no leader"); a write fails as
    EtcdNoQuorum, and the store's probe reports it up while that is short (an election), lost past the grace."""
    etcd = await asyncio.to_thread(lambda: EtcdCluster(tmp_path / "etcd3", size=3).start())
    store = await open_etcd_store([etcd.endpoints[0]])
    try:
        await store.create(service("before"))
        for member in etcd.members[1:]:
            await asyncio.to_thread(member.stop)
        store.leaderless_grace = 3600.0
        await until(lambda: leaderless(store))
        assert await store.probe(timeout=2.0) and store.reachable  # no leader yet: an election, for all it knows
        with pytest.raises(EtcdNoQuorum, match="no leader"):
            await store.create(service("refused"))
        assert store.reachable
        store.leaderless_grace = 0.0
        assert not await store.probe(timeout=2.0)
        assert not store.reachable and "raft leader" in store.last_error and "no leader" in store.last_error
        assert store.get("Service", "default", "before") is not None  # reads answer from memory
        for member in etcd.members[1:]:
            await asyncio.to_thread(member.start, new=False)
        await until(lambda: store.probe(timeout=2.0))
        await retried(lambda: store.create(service("after")))
    finally:
        await store.close()
        await asyncio.to_thread(etcd.stop)


async def until(check: Any, timeout: float = 60.0) -> None:
    """Awaits `check()` until it is true (fails after `timeout`)."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.1)


async def leaderless(store: EtcdObjectStore) -> bool:
    """Whether the store's first member refuses a request for want of a raft leader."""
    _, attempts = await store.client.survey("/v3/kv/range", {"key": "eA==", "serializable": True}, timeout=2.0)
    return any("no leader" in a.text for a in attempts)


async def retried(write: Any, attempts: int = 5) -> Any:
    """A write as a client makes it: tried again after an unavailable store (a raft election in progress)."""
    for attempt in range(attempts):
        try:
            return await write()
        except AlreadyExists:
            if not attempt:
                raise
            return None  # an attempt that timed out did reach etcd (the client cannot know)
        except PersistError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(1)


async def test_a_batch_etcd_refuses_names_the_limit_and_writes_nothing(two: tuple) -> None:
    a, b = two
    with pytest.raises(PersistError, match="--max-txn-ops"):
        await a.transaction([Create(service(f"many-{i}")) for i in range(200)])
    assert a.reachable and a.list("Service") == []  # refused whole; the store is not taken for unreachable
    await a.transaction([Create(service(f"some-{i}")) for i in range(100)])  # within the limit: one transaction
    await eventually(lambda: len(b.list("Service")) == 100)
    assert len({o["metadata"]["resourceVersion"] for o in b.list("Service")}) == 1


async def test_a_watch_behind_a_compaction_lists_again_and_its_watchers_see_the_difference(two: tuple) -> None:
    a, b = two
    await b.create(service("stays"))
    await b.create(service("goes"))
    await eventually(lambda: len(a.list("Service")) == 2)
    a._watch_task.cancel()  # a loses its watch (as in an outage) while b writes and the history is compacted
    await asyncio.gather(a._watch_task, return_exceptions=True)
    since = a.resource_version
    await b.delete("Service", "default", "goes")
    await b.create(service("new"))
    await b.client.compact(b.resource_version)
    watch = a.watch("Service", "default", from_resource_version=since)
    a._watch_task = asyncio.create_task(a._follow())
    events = [await asyncio.wait_for(anext(watch), 30) for _ in range(2)]
    assert sorted((e.type, e.object["metadata"]["name"]) for e in events) == [("ADDED", "new"), ("DELETED", "goes")]
    assert sorted(o["metadata"]["name"] for o in a.list("Service")) == ["new", "stays"]
    await watch.aclose()
    with pytest.raises(Expired):  # a watch from before the relist cannot be resumed: its client lists again
        await anext(a.watch("Service", "default", from_resource_version=since))

"""The object store with a real SQLite file: metadata, optimistic concurrency, atomic batches, watch from a
resourceVersion, persistence across a reopen, damaged files and records, and writes that cannot be persisted."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from meshd.store import (
    AlreadyExists,
    Conflict,
    CorruptStore,
    Create,
    Delete,
    Expired,
    NotFound,
    ObjectStore,
    PersistError,
    SqliteBackend,
    Update,
)

pytestmark = pytest.mark.usefixtures("no_blocking_calls")


def service(name: str, *, port: int = 80, labels: dict[str, str] | None = None, ns: str = "default") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {"ports": [{"port": port}]}}


async def open_store(path: Path, **kw: Any) -> ObjectStore:
    return await ObjectStore.open(SqliteBackend(path / "store.db"), **kw)


async def test_create_sets_metadata_and_update_checks_the_resource_version(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    created = await store.create(service("web"))
    meta = created["metadata"]
    assert len(meta["uid"]) == 36 and meta["generation"] == 1 and meta["creationTimestamp"].endswith("Z")
    assert int(meta["resourceVersion"]) == store.resource_version == 1
    with pytest.raises(AlreadyExists):
        await store.create(service("web"))

    relabelled = service("web", labels={"a": "b"})
    relabelled["metadata"]["resourceVersion"] = meta["resourceVersion"]
    second = await store.update(relabelled)
    assert second["metadata"]["uid"] == meta["uid"]
    assert second["metadata"]["generation"] == 1  # metadata only: no new generation
    assert int(second["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])

    stale = service("web", port=81)
    stale["metadata"]["resourceVersion"] = meta["resourceVersion"]
    with pytest.raises(Conflict):
        await store.update(stale)
    assert store.get("Service", "default", "web") == second

    third = await store.update(service("web", port=81))  # no resourceVersion: last writer wins
    assert third["metadata"]["generation"] == 2
    with pytest.raises(Conflict):
        await store.delete("Service", "default", "web", resource_version=second["metadata"]["resourceVersion"])
    with pytest.raises(NotFound):
        await store.delete("Service", "default", "nope")
    await store.close()


async def test_concurrent_updates_from_one_version_one_wins(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    base = await store.create(service("web"))

    async def update(port: int) -> str:
        obj = service("web", port=port)
        obj["metadata"]["resourceVersion"] = base["metadata"]["resourceVersion"]
        try:
            await store.update(obj)
            return "ok"
        except Conflict:
            return "conflict"

    results = await asyncio.gather(*(update(8000 + i) for i in range(5)))
    assert sorted(results) == ["conflict"] * 4 + ["ok"]
    await store.close()


async def test_a_batch_is_all_or_nothing(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    await store.create(service("taken"))
    before = store.resource_version
    with pytest.raises(AlreadyExists):
        await store.transaction([Create(service(f"s{i}")) for i in range(100)] + [Create(service("taken"))])
    assert store.list("Service") == [store.get("Service", "default", "taken")]
    assert store.resource_version == before

    created = await store.transaction([Create(service(f"s{i}")) for i in range(2000)])
    assert len(created) == 2000 and len(store.list("Service")) == 2001
    await store.transaction([Delete("Service", "default", f"s{i}") for i in range(2000)])
    await store.close()

    reopened = await open_store(tmp_path)
    assert [o["metadata"]["name"] for o in reopened.list("Service")] == ["taken"]
    assert reopened.resource_version == before + 4000
    await reopened.close()


class FailingBackend(SqliteBackend):
    """Fails the next commit as a full disk does (the real sqlite error, raised inside the transaction)."""

    fail = False

    def commit(self, puts: list[dict[str, Any]], deletes: list[Any], resource_version: int) -> None:
        if self.fail:
            real = self._db
            assert real is not None

            class Full:
                in_transaction = property(lambda _self: real.in_transaction)

                def execute(self, sql: str, *args: Any) -> Any:
                    if sql.startswith("UPDATE counter"):
                        raise sqlite3.OperationalError("database or disk is full")
                    return real.execute(sql, *args)

                def executemany(self, sql: str, rows: Any) -> Any:
                    return real.executemany(sql, rows)

            self._db = Full()  # type: ignore[assignment]
            try:
                return super().commit(puts, deletes, resource_version)
            finally:
                self._db = real
        return super().commit(puts, deletes, resource_version)


async def test_a_write_that_cannot_be_persisted_is_refused_whole(tmp_path: Path) -> None:
    backend = FailingBackend(tmp_path / "store.db")
    store = await ObjectStore.open(backend)
    kept = await store.create(service("kept"))
    backend.fail = True
    with pytest.raises(PersistError, match="disk is full"):
        await store.transaction([Create(service("new")), Delete("Service", "default", "kept")])
    assert store.get("Service", "default", "new") is None
    assert store.get("Service", "default", "kept") == kept
    backend.fail = False
    await store.create(service("later"))  # the store keeps working once there is room
    await store.close()
    reopened = await open_store(tmp_path)
    assert [o["metadata"]["name"] for o in reopened.list("Service")] == ["kept", "later"]
    assert reopened.get("Service", "default", "kept") == kept
    await reopened.close()


async def test_watch_from_a_resource_version_replays_then_follows(tmp_path: Path) -> None:
    store = await open_store(tmp_path, watch_cache=10)
    a = await store.create(service("a"))
    await store.create(service("b"))
    await store.update(service("b", port=81))
    await store.create({"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}, "data": {}})
    seen: list[tuple[str, str]] = []

    async def follow() -> None:
        async for event in store.watch("Service", from_resource_version=int(a["metadata"]["resourceVersion"])):
            seen.append((event.type, event.object["metadata"]["name"]))
            if event.type == "DELETED":
                return

    task = asyncio.create_task(follow())
    await asyncio.sleep(0)
    await store.delete("Service", "default", "a")
    await asyncio.wait_for(task, 5)
    assert seen == [("ADDED", "b"), ("MODIFIED", "b"), ("DELETED", "a")]

    everything = store.watch("Service")
    first = await anext(everything)
    assert (first.type, first.object["metadata"]["name"]) == ("ADDED", "b")
    await everything.aclose()

    for i in range(20):
        await store.create(service(f"n{i}"))
    with pytest.raises(Expired):
        await anext(store.watch(from_resource_version=int(a["metadata"]["resourceVersion"])))
    await store.close()


async def test_list_filters_by_namespace_labels_and_fields(tmp_path: Path) -> None:
    store = ObjectStore()
    await store.transaction([Create(service("a", labels={"app": "x"})), Create(service("b", labels={"app": "y"})),
                             Create(service("c", ns="other", labels={"app": "x"}))])
    names = lambda objs: [o["metadata"]["name"] for o in objs]
    assert names(store.list("Service")) == ["a", "b", "c"]
    assert names(store.list("Service", "default")) == ["a", "b"]
    assert names(store.list("Service", label_selector="app=x")) == ["a", "c"]
    assert names(store.list("Service", field_selector="metadata.name=nope")) == []
    assert names(store.list("Service", field_selector="metadata.namespace!=default")) == ["c"]
    with pytest.raises(ValueError):
        store.list("Service", field_selector="metadata.name")


async def test_a_damaged_file_is_named_and_a_damaged_record_skipped(tmp_path: Path, caplog: Any) -> None:
    store = await open_store(tmp_path)
    await store.transaction([Create(service("good")), Create(service("bad"))])
    await store.close()
    db = sqlite3.connect(tmp_path / "store.db")
    db.execute("UPDATE objects SET data = '{not json' WHERE name = 'bad'")
    db.commit()
    db.close()
    reopened = await open_store(tmp_path)
    assert [o["metadata"]["name"] for o in reopened.list("Service")] == ["good"]
    assert "damaged record Service default/bad" in caplog.text
    await reopened.close()

    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "store.db").write_bytes(b"this is not a database, " * 200)
    with pytest.raises(CorruptStore) as error:
        await open_store(tmp_path / "broken")
    message = str(error.value)
    assert str(tmp_path / "broken" / "store.db") in message and "move it aside" in message
    assert "\n" not in message


async def test_nothing_but_json_is_stored() -> None:
    store = ObjectStore()
    with pytest.raises(ValueError):
        await store.create({"kind": "X", "metadata": {"name": "x"}, "spec": {"bad": object()}})
    with pytest.raises(ValueError):
        await store.transaction([Update({"kind": "X", "metadata": {}})])


async def test_a_tick_is_a_revision_of_its_own_that_survives_a_restart(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    created = await store.create(service("web"))
    heard: list = []
    store.listen(heard.append)
    revision = await store.tick()  # what the API's watch cache records a status computed live at
    assert revision == int(created["metadata"]["resourceVersion"]) + 1 == store.resource_version
    assert heard == [] and len(store) == 1  # no object changed
    await store.close()
    again = await open_store(tmp_path)
    assert again.resource_version == revision  # never handed out twice
    updated = await again.update({**service("web", port=81), "metadata": {"name": "web", "namespace": "default"}})
    assert int(updated["metadata"]["resourceVersion"]) == revision + 1 and heard == []
    await again.close()

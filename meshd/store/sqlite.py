"""The store's persistence in SQLite (stdlib sqlite3, WAL, synchronous=FULL), as k3s keeps its state: one
table of objects keyed by kind/namespace/name with the JSON, and the resourceVersion counter. A batch is one
transaction; a delete deletes one row. Calls block: ObjectStore makes them from its writer thread."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

from meshd.store.api import CorruptStore, Key, PersistError
from meshd.store.objects import ObjectStore

log = logging.getLogger(__name__)

STORE_FILE = "store.db"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    resource_version INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (kind, namespace, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY CHECK (id = 0), resource_version INTEGER NOT NULL);
INSERT OR IGNORE INTO counter VALUES (0, 0);
"""


class SqliteBackend:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # it holds Secrets: readable by the owner only (SQLite gives its -wal and -shm files the same mode)
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            os.chmod(self.path, 0o600)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # an acknowledged write survives a power cut too
            problems = [row[0] for row in db.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                db.close()
                raise CorruptStore(str(self.path), "; ".join(problems[:3]))
            db.executescript(_SCHEMA)
        except (sqlite3.OperationalError, PermissionError) as error:  # locked, no permission, disk full: the file may be fine
            raise CorruptStore(str(self.path), str(error), damaged=False) from None
        except sqlite3.DatabaseError as error:  # not a database, malformed
            raise CorruptStore(str(self.path), str(error)) from None
        return db

    def load(self) -> tuple[list[dict[str, Any]], int]:
        self._db = db = self._open()
        try:
            (counter,) = db.execute("SELECT resource_version FROM counter").fetchone()
            rows = db.execute("SELECT kind, namespace, name, resource_version, data FROM objects").fetchall()
        except sqlite3.DatabaseError as error:
            raise CorruptStore(str(self.path), str(error)) from None
        objects = []
        for kind, namespace, name, rv, data in rows:
            try:
                obj = json.loads(data)
                if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
                    raise TypeError("not an object with metadata")
                obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"] = kind, namespace, name
                obj["metadata"]["resourceVersion"] = str(rv)
                counter = max(counter, rv)
            except (ValueError, TypeError) as error:
                log.error("state store %s: skipping the damaged record %s %s/%s (%s); re-apply it, or it stays "
                          "out", self.path, kind, namespace, name, error)
                continue
            objects.append(obj)
        return objects, counter

    def commit(self, puts: list[dict[str, Any]], deletes: list[Key], resource_version: int) -> None:
        db = self._db or self._open()
        self._db = db
        rows = [(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"],
                 int(o["metadata"]["resourceVersion"]), json.dumps(o, separators=(",", ":"))) for o in puts]
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?", deletes)
                db.executemany("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?)", rows)
                db.execute("UPDATE counter SET resource_version = ? WHERE id = 0", (resource_version,))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise PersistError(f"cannot write the state store {self.path}: {error}") from None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


async def open_sqlite_store(state_dir: Path) -> ObjectStore:
    """The agent's store in STATE/store.db; CorruptStore when it cannot be read."""
    return await ObjectStore.open(SqliteBackend(state_dir / STORE_FILE))


__all__ = ["STORE_FILE", "SqliteBackend", "open_sqlite_store"]

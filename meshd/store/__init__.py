"""The object store at the centre: every object with its uid, resourceVersion and generation, a watch cache,
and persistence behind a small interface (SQLite in the state dir today; etcd can implement the same later).

`Store` is the interface; `ObjectStore` is the implementation (an in-memory index and watch cache over a
`Backend`: `SqliteBackend`, or none for tests)."""

from meshd.store.api import (
    AlreadyExists,
    Conflict,
    CorruptStore,
    Create,
    Delete,
    Event,
    Expired,
    NotFound,
    Operation,
    PersistError,
    Store,
    StoreError,
    Update,
    object_key,
)
from meshd.store.objects import Backend, ObjectStore
from meshd.store.sqlite import SqliteBackend, open_sqlite_store

__all__ = [
    "AlreadyExists",
    "Backend",
    "Conflict",
    "CorruptStore",
    "Create",
    "Delete",
    "Event",
    "Expired",
    "NotFound",
    "ObjectStore",
    "Operation",
    "PersistError",
    "SqliteBackend",
    "Store",
    "StoreError",
    "Update",
    "object_key",
    "open_sqlite_store",
]

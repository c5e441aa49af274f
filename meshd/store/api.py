"""The store's interface, small enough for an etcd-backed store to implement: get, list (and scan: one kind in
key order), create, update (optimistic concurrency on resourceVersion), delete, an atomic batch of those, watch
from a resourceVersion, a listener called with each change as it becomes visible, and tick: a new revision that
changes nothing (what the API's watch cache records a computed status at). Objects are Kubernetes-shaped dicts
(`kind`, `metadata.namespace`, `metadata.name`)."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Key = tuple[str, str, str]  # (kind, namespace, name)
EventType = Literal["ADDED", "MODIFIED", "DELETED"]


class StoreError(Exception):
    """A request the store refuses; nothing changed."""


class NotFound(StoreError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class AlreadyExists(StoreError):
    pass


class Conflict(StoreError):
    """A stale resourceVersion: the object changed since the caller read it."""


class Expired(StoreError):
    """A watch from a resourceVersion older than the watch cache holds (the API server's 410 Gone)."""


class PersistError(StoreError):
    """The change could not be written (disk full, I/O error): refused whole, memory unchanged."""


class CorruptStore(StoreError):
    """The database cannot be read; the message names the file and what to do."""

    def __init__(self, path: str, detail: str, *, damaged: bool = True) -> None:
        if damaged:
            message = (f"the state store {path} is damaged ({detail}): move it aside (mv {path} {path}.broken) "
                       f"and start the agent again, which then starts empty")
        else:
            message = f"cannot open the state store {path}: {detail}"
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class Create:
    """Creates an object; a uid or creationTimestamp it carries is kept (for migrations), else set."""

    obj: Mapping[str, Any]


@dataclass(frozen=True)
class Update:
    """Replaces an existing object; with metadata.resourceVersion set, only if that is still current."""

    obj: Mapping[str, Any]


@dataclass(frozen=True)
class Delete:
    kind: str
    namespace: str
    name: str
    resource_version: str | None = None  # a precondition, as Kubernetes' DeleteOptions.preconditions


Operation = Create | Update | Delete


@dataclass(frozen=True)
class Event:
    type: EventType
    object: Mapping[str, Any]  # for DELETED: the last state, with the resourceVersion of the deletion

    @property
    def resource_version(self) -> int:
        return int(self.object["metadata"]["resourceVersion"])


def object_key(obj: Mapping[str, Any]) -> Key:
    metadata = obj.get("metadata") or {}
    return str(obj.get("kind", "")), str(metadata.get("namespace") or ""), str(metadata.get("name", ""))


class Store(Protocol):
    """What the API and the controllers use; every write is persisted before it is visible."""

    @property
    def resource_version(self) -> int: ...

    def get(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None: ...

    def list(self, kind: str | None, namespace: str | None = None, *, label_selector: str = "",
             field_selector: str = "") -> builtins.list[Mapping[str, Any]]: ...

    def scan(self, kind: str, namespace: str | None = None
             ) -> builtins.list[tuple[tuple[str, str], Mapping[str, Any]]]: ...

    async def create(self, obj: Mapping[str, Any]) -> Mapping[str, Any]: ...

    async def update(self, obj: Mapping[str, Any]) -> Mapping[str, Any]: ...

    async def delete(self, kind: str, namespace: str, name: str, *,
                     resource_version: str | None = None) -> Mapping[str, Any]: ...

    async def transaction(self, operations: Sequence[Operation]) -> builtins.list[Mapping[str, Any]]: ...

    async def tick(self) -> int: ...

    def listen(self, listener: Callable[[Event], None]) -> Callable[[], None]: ...

    def watch(self, kind: str | None = None, namespace: str | None = None, *,
              from_resource_version: int | None = None) -> AsyncIterator[Event]: ...

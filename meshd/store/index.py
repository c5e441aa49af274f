"""The store's objects in memory, indexed by kind: a mapping keyed by (kind, namespace, name) that also keeps, per
kind, the (namespace, name) keys in order, so reading one kind (or one namespace of it) touches only those objects
and sorts nothing (etcd's list by key prefix, SQLite's primary-key range)."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any

from meshd.store.api import Key

Name = tuple[str, str]  # (namespace, name)


class _Kind:
    __slots__ = ("keys", "objects")

    def __init__(self) -> None:
        self.objects: dict[Name, dict[str, Any]] = {}
        self.keys: list[Name] = []  # sorted


class ObjectIndex(MutableMapping[Key, dict[str, Any]]):
    """dict-like (kind, namespace, name) -> object, with `scan(kind, namespace)` in key order. Adding or removing
    a key costs a bisection and a list insert; replacing an object costs a dict assignment."""

    def __init__(self, items: Iterable[tuple[Key, dict[str, Any]]] = ()) -> None:
        self._kinds: dict[str, _Kind] = {}
        self._count = 0
        for key, obj in items:
            self[key] = obj

    def __getitem__(self, key: Key) -> dict[str, Any]:
        kind = self._kinds.get(key[0])
        if kind is None:
            raise KeyError(key)
        return kind.objects[key[1:]]

    def get(self, key: Key, default: Any = None) -> Any:  # the hot path: no exception
        kind = self._kinds.get(key[0])
        return default if kind is None else kind.objects.get(key[1:], default)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 3:
            return False
        kind = self._kinds.get(key[0])
        return kind is not None and key[1:] in kind.objects

    def __setitem__(self, key: Key, obj: dict[str, Any]) -> None:
        kind = self._kinds.get(key[0])
        if kind is None:
            kind = self._kinds[key[0]] = _Kind()
        name = key[1:]
        if name not in kind.objects:
            bisect.insort(kind.keys, name)
            self._count += 1
        kind.objects[name] = obj

    def __delitem__(self, key: Key) -> None:
        kind = self._kinds.get(key[0])
        if kind is None or key[1:] not in kind.objects:
            raise KeyError(key)
        name = key[1:]
        del kind.objects[name]
        del kind.keys[bisect.bisect_left(kind.keys, name)]
        self._count -= 1
        if not kind.objects:
            del self._kinds[key[0]]

    def __iter__(self) -> Iterator[Key]:
        for kind in sorted(self._kinds):
            for namespace, name in self._kinds[kind].keys:
                yield kind, namespace, name

    def __len__(self) -> int:
        return self._count

    def kinds(self) -> list[str]:
        return sorted(self._kinds)

    def scan(self, kind: str, namespace: str | None = None) -> list[tuple[Name, dict[str, Any]]]:
        """The objects of one kind (in one namespace, None: all), as ((namespace, name), object) in key order."""
        entry = self._kinds.get(kind)
        if entry is None:
            return []
        keys = entry.keys
        if namespace is not None:  # every namespace above this one sorts at or after namespace + "\0"
            keys = keys[bisect.bisect_left(keys, (namespace,)):bisect.bisect_left(keys, (namespace + "\0",))]
        objects = entry.objects
        return [(key, objects[key]) for key in keys]


__all__ = ["Name", "ObjectIndex"]

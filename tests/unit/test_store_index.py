"""The store's per-kind index (meshd.store.index): one kind, one namespace, in key order, whatever the order of
the writes; and the store's list and scan read it."""

from __future__ import annotations

import random

import pytest

from meshd.store import Create, Delete, ObjectStore
from meshd.store.index import ObjectIndex


def obj(kind: str, namespace: str, name: str) -> dict:
    return {"kind": kind, "metadata": {"namespace": namespace, "name": name}}


KEYS = [("Pod", "a", "x"), ("Pod", "a", "y"), ("Pod", "ab", "a"), ("Pod", "b", "a"), ("Pod", "a\x00", "z"),
        ("Service", "a", "x"), ("Event", "", "e"), ("Pod", "", "top")]


@pytest.mark.parametrize(("kind", "namespace", "expected"), [
    ("Pod", None, [("", "top"), ("a", "x"), ("a", "y"), ("a\x00", "z"), ("ab", "a"), ("b", "a")]),
    ("Pod", "a", [("a", "x"), ("a", "y")]),  # not "ab", not "a\0"
    ("Pod", "ab", [("ab", "a")]),
    ("Pod", "", [("", "top")]),
    ("Pod", "c", []),
    ("Service", None, [("a", "x")]),
    ("Node", None, []),
])
def test_scan_reads_one_kind_in_key_order(kind: str, namespace: str | None, expected: list) -> None:
    shuffled = KEYS[:]
    random.Random(7).shuffle(shuffled)
    index = ObjectIndex((k, obj(*k)) for k in shuffled)
    assert [key for key, _ in index.scan(kind, namespace)] == expected
    assert all(o["metadata"]["name"] == key[1] for key, o in index.scan(kind, namespace))


def test_the_index_is_a_mapping() -> None:
    index = ObjectIndex()
    index[("Pod", "a", "x")] = obj("Pod", "a", "x")
    index[("Pod", "a", "x")] = replaced = obj("Pod", "a", "x")  # a replacement is not a second key
    index[("Pod", "a", "w")] = obj("Pod", "a", "w")
    assert len(index) == 2 and index[("Pod", "a", "x")] is replaced and ("Pod", "a", "x") in index
    assert list(index) == [("Pod", "a", "w"), ("Pod", "a", "x")]
    assert index.pop(("Pod", "a", "w"))["metadata"]["name"] == "w"
    assert index.pop(("Pod", "a", "w"), None) is None and index.get(("Nope", "", "")) is None
    del index[("Pod", "a", "x")]
    assert len(index) == 0 and index.kinds() == [] and index.scan("Pod") == []
    with pytest.raises(KeyError):
        del index[("Pod", "a", "x")]


async def test_the_store_lists_and_scans_from_the_index() -> None:
    store = ObjectStore()
    await store.transaction([Create(obj("Pod", ns, n)) for ns, n in (("b", "1"), ("a", "2"), ("a", "1"))])
    await store.create(obj("ConfigMap", "a", "c"))
    assert [k for k, _ in store.scan("Pod")] == [("a", "1"), ("a", "2"), ("b", "1")]
    assert [k for k, _ in store.scan("Pod", "a")] == [("a", "1"), ("a", "2")]
    assert [o["kind"] for o in store.list(None)] == ["ConfigMap", "Pod", "Pod", "Pod"]
    await store.transaction([Delete("Pod", "a", "1")])
    assert [o["metadata"]["name"] for o in store.list("Pod", "a")] == ["2"]

"""The etcd store's pure parts: the --store URL, keys, and what etcd keeps of an object."""

from __future__ import annotations

import base64
import json

import pytest

from meshd.store.etcd import decode, encode, etcd_key, parse_etcd_key
from meshd.store.etcdclient import KeyValue, b64, parse_store_url, prefix_end


@pytest.mark.parametrize(("text", "endpoints"), [
    ("etcd://127.0.0.1:2379", ["http://127.0.0.1:2379"]),
    ("etcd://a:1,b:2/", ["http://a:1", "http://b:2"]),
    ("etcd://[::1]:2379", ["http://[::1]:2379"]),
    ("http://a:1", ["http://a:1"]),
    ("https://10.0.0.1:2379,10.0.0.2:2379", ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]),
    ("https://a:1,https://b:2", ["https://a:1", "https://b:2"]),  # etcdctl's --endpoints
])
def test_store_urls(text: str, endpoints: list[str]) -> None:
    assert parse_store_url(text) == endpoints


@pytest.mark.parametrize("text", ["mysql://a:1", "https://a:1,http://b:2", "etcd://a", "etcd://a:x", "etcd://a:1,", "etcd://:1", "etcd://a:70000"])
def test_bad_store_urls_are_named(text: str) -> None:
    with pytest.raises(ValueError, match="--store"):
        parse_store_url(text)


@pytest.mark.parametrize(("key", "text"), [
    (("Service", "default", "web"), "/meshd/registry/Service/default/web"),
    (("Node", "", "n1"), "/meshd/registry/Node//n1"),
])
def test_keys_round_trip(key: tuple[str, str, str], text: str) -> None:
    assert etcd_key(key) == text and parse_etcd_key(text) == key


@pytest.mark.parametrize("text", ["/meshd/registry/Service/web", "/other/Service/a/b", "/meshd/registry/Service/a/"])
def test_foreign_keys_are_not_objects(text: str) -> None:
    assert parse_etcd_key(text) is None


def test_prefix_end_is_the_next_key() -> None:
    assert base64.b64decode(prefix_end("/a/")) == b"/a0"


def test_the_resource_version_is_etcds_revision_not_stored() -> None:
    obj = {"kind": "Service", "metadata": {"name": "web", "namespace": "default", "resourceVersion": "7"}}
    value = base64.b64decode(encode(obj))
    assert "resourceVersion" not in json.loads(value)["metadata"]
    kv = KeyValue("/meshd/registry/Service/default/web", value, 3, 42)
    assert decode(kv)["metadata"]["resourceVersion"] == "42"
    assert decode(KeyValue("/meshd/registry/Service/default/web", b"[1]", 3, 4)) is None
    assert b64("x") == "eA=="

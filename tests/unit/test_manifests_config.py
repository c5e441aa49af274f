"""ConfigMap and Secret validation: keys, base64, stringData, the Secret types' required keys, immutability."""

from __future__ import annotations

import base64

import pytest

from meshd.manifests import ManifestError, load_documents, to_manifest
from meshd.manifests.config import config_key_problem, update_problem
from meshd.model.objects import ConfigMap, Secret


def load_one(text: str):
    (obj,) = load_documents(text, source="x.yaml").objects
    return obj


@pytest.mark.parametrize(("key", "ok"), [
    ("app.properties", True), ("a-b_c.D9", True), (".dockerconfigjson", True), ("tls.crt", True),
    ("", False), (".", False), ("..", False), ("..data", False), ("a/b", False), ("a b", False), ("x" * 254, False),
])
def test_config_keys(key, ok):
    assert (config_key_problem(key) is None) == ok


def test_a_secret_merges_string_data_into_base64_data():
    secret = load_one("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"
                      "data: {a: YQ==, b: Yg==}\nstringData: {b: B, c: C}\n")
    assert isinstance(secret, Secret)
    assert secret.type == "Opaque" and secret.data == {"a": b"a", "b": b"B", "c": b"C"}
    manifest = to_manifest(secret)
    assert "stringData" not in manifest
    assert manifest["data"] == {k: base64.b64encode(v).decode() for k, v in secret.data.items()}
    assert "B" not in repr(secret) and "data" not in repr(secret).replace("metadata", "")


def test_a_configmap_keeps_data_and_binary_data():
    cm = load_one("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: x}\nbinaryData: {b: AAE=}\n")
    assert isinstance(cm, ConfigMap) and cm.data == {"a": "x"} and cm.binary_data == {"b": b"\x00\x01"}


SECRET = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"
CONFIG_MAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"


@pytest.mark.parametrize(("text", "path", "message"), [
    (SECRET + "data: {a: '%%%'}", "data.a", "illegal base64 data"),
    (SECRET + "data: {a: 'YQ'}", "data.a", "illegal base64 data"),  # padding is required
    (SECRET + "data: {'a/b': YQ==}", "data[a/b]", "invalid key"),
    (SECRET + "stringData: {port: 5432}", "stringData.port", "got an integer"),
    (SECRET + "data: {a: [1]}", "data.a", "got a list"),
    (SECRET + "type: kubernetes.io/tls\nstringData: {tls.crt: c}", "data[tls.key]", "required"),
    (SECRET + "type: kubernetes.io/dockerconfigjson\nstringData: {.dockerconfigjson: '[1'}",
     "data[.dockerconfigjson]", "invalid JSON"),
    (SECRET + "type: kubernetes.io/basic-auth\nstringData: {user: x}", "data.username", "username or a password"),
    (SECRET + "type: kubernetes.io/ssh-auth\n", "data.ssh-privatekey", "required"),
    (SECRET + "type: kubernetes.io/service-account-token\n", "type", "not supported"),
    (SECRET + "spec: {}\n", "spec", "unknown field"),
    (CONFIG_MAP + "data: {a: 1}", "data.a", "got an integer"),
    (CONFIG_MAP + "data: {a: x}\nbinaryData: {a: YQ==}", "binaryData.a", "duplicate"),
    (CONFIG_MAP + "stringData: {a: x}", "stringData", "unknown field"),
    (CONFIG_MAP + "immutable: yes-please", "immutable", "expected true or false"),
    (CONFIG_MAP + "data: {a: '" + "x" * (1024 * 1024) + "'}", "data", "too long"),
])
def test_bad_input_names_the_field_and_never_the_value(text, path, message):
    with pytest.raises(ManifestError) as info:
        load_documents(text, source="x.yaml")
    assert info.value.field_path == path and message in info.value.problem, str(info.value)
    assert "5432" not in str(info.value) and "%%%" not in str(info.value)


def test_updates_of_immutable_objects_and_secret_types_are_refused():
    cm = load_one(CONFIG_MAP + "data: {a: x}\n")
    frozen = load_one(CONFIG_MAP + "immutable: true\ndata: {a: x}\n")
    changed = load_one(CONFIG_MAP + "immutable: true\ndata: {a: y}\n")
    assert update_problem(cm, changed) is None  # a mutable one may become immutable
    assert update_problem(frozen, changed) == (("data",), "field is immutable when `immutable` is set")
    assert update_problem(frozen, cm) == (("immutable",), "field is immutable when `immutable` is set")
    assert update_problem(frozen, frozen) is None
    opaque = load_one(SECRET + "stringData: {tls.crt: a, tls.key: b}\n")
    tls = load_one(SECRET + "type: kubernetes.io/tls\nstringData: {tls.crt: a, tls.key: b}\n")
    assert update_problem(opaque, tls) == (("type",), 'field is immutable (was "Opaque")')

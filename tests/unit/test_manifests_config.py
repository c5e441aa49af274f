"""ConfigMap and Secret validation: keys, base64, stringData, the Secret types' required keys, immutability."""

from __future__ import annotations

import base64

import pytest
import yaml

from meshd.manifests import ManifestError, load_documents, render, to_manifest
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


POD = """apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: c
    image: busybox
    MOUNTS
  volumes:
  - VOLUME
"""


@pytest.mark.parametrize(("volume", "mounts", "path", "message"), [
    ("{name: v, configMap: {name: cm, items: [{key: a, path: ../x}]}}", "", "spec.volumes[0].configMap.items[0].path",
     "must not contain '..'"),
    ("{name: v, configMap: {name: cm, items: [{key: a, path: /x}]}}", "", "spec.volumes[0].configMap.items[0].path",
     "must be a relative path"),
    ("{name: v, secret: {secretName: s, defaultMode: 01000}}", "", "spec.volumes[0].secret.defaultMode",
     "must be less than or equal to 511"),
    ("{name: v, secret: {secretName: s, items: [{key: a, path: x}, {key: b, path: x}]}}", "",
     "spec.volumes[0].secret.items[1].path", "duplicate path"),
    ("{name: v, configMap: {name: cm}, secret: {secretName: s}}", "", "spec.volumes[0].secret",
     "may not specify more than 1 volume type"),
    ("{name: v, projected: {sources: [{serviceAccountToken: {path: t}}]}}", "",
     "spec.volumes[0].projected.sources[0].serviceAccountToken", "not supported"),
    ("{name: v, downwardAPI: {items: [{path: ip, fieldRef: {fieldPath: status.podIP}}]}}", "",
     "spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath", "unsupported value"),
    ("{name: v, downwardAPI: {items: [{path: m, resourceFieldRef: {resource: limits.memory}}]}}", "",
     "spec.volumes[0].downwardAPI.items[0].resourceFieldRef.containerName", "required in a downwardAPI volume"),
    ("{name: v, emptyDir: {}}", "volumeMounts: [{name: v, mountPath: /x, subPath: a}]",
     "spec.containers[0].volumeMounts[0].subPath", "not supported yet on this volume type"),
    ("{name: v, configMap: {name: cm}}", "volumeMounts: [{name: v, mountPath: /x, subPath: ../a}]",
     "spec.containers[0].volumeMounts[0].subPath", "must not contain '..'"),
    ("{name: v, configMap: {name: cm}}", "envFrom: [{configMapRef: {name: cm}, secretRef: {name: s}}]",
     "spec.containers[0].envFrom[0]", "exactly one of configMapRef or secretRef"),
    ("{name: v, configMap: {name: cm}}", "env: [{name: A, valueFrom: {configMapKeyRef: {name: cm}}}]",
     "spec.containers[0].env[0].valueFrom.configMapKeyRef.key", "required field is missing"),
    ("{name: v, configMap: {name: cm}}", "imagePullSecrets: [{name: x}]", "spec.containers[0].imagePullSecrets",
     "unknown field"),
])
def test_bad_pod_config_names_the_field(volume, mounts, path, message):
    text = POD.replace("VOLUME", volume).replace("MOUNTS", mounts or "command: [sh]")
    with pytest.raises(ManifestError) as info:
        load_documents(text, source="p.yaml")
    assert info.value.field_path == path and message in info.value.problem, str(info.value)


def test_a_pod_spec_with_config_sources_round_trips_through_render():
    text = POD.replace("VOLUME", "{name: v, projected: {sources: [{configMap: {name: cm, items: [{key: a, path: a, "
                                 "mode: 0400}]}}, {secret: {name: s, optional: true}}, {downwardAPI: {items: [{path: "
                                 "n, fieldRef: {fieldPath: metadata.name}}]}}]}}").replace(
        "MOUNTS", "volumeMounts: [{name: v, mountPath: /x, subPath: a}]\n    envFrom: [{prefix: P_, secretRef: {name: "
                  "s}}]\n    env: [{name: A, valueFrom: {configMapKeyRef: {name: cm, key: k, optional: true}}}]")
    text += "  imagePullSecrets: [{name: regcred}]\n"
    (pod,) = load_documents(text).objects
    rendered = render(pod)
    (again,) = load_documents(yaml.safe_dump(rendered)).objects
    assert again == pod
    assert rendered["spec"]["imagePullSecrets"] == [{"name": "regcred"}]

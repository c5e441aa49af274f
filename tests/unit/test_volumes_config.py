"""meshd.volumes: volume files and env from ConfigMaps and Secrets (pure), the atomic writer's `..data` swap on a
real directory, and imagePullSecrets credentials."""

from __future__ import annotations

import base64
import json
import os

import pytest

from meshd.manifests import load_documents
from meshd.model.expansion import PodFacts
from meshd.model.objects import Pod
from meshd.volumes.atomic import DATA, write_atomically
from meshd.volumes.payload import ConfigError, File, resolve_config_env, volume_files
from meshd.volumes.pullauth import image_registry, registry_auth

OBJECTS = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
data: {a: alpha, b: beta, dot.key: x}
---
apiVersion: v1
kind: Secret
metadata: {name: s}
stringData: {password: hunter2, "9lives": cat}
"""
POD = """\
apiVersion: v1
kind: Pod
metadata: {name: p, labels: {app: web, tier: front}}
spec:
  volumes:
  - {name: all, configMap: {name: cm}}
  - {name: some, configMap: {name: cm, items: [{key: a, path: dir/a.txt, mode: 0400}], defaultMode: 0600}}
  - {name: sec, secret: {secretName: s, defaultMode: 0400}}
  - {name: gone, secret: {secretName: nope, optional: true}}
  - name: proj
    projected:
      sources:
      - configMap: {name: cm, items: [{key: b, path: b}]}
      - secret: {name: s, items: [{key: password, path: pw}]}
      - downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}
  - name: down
    downwardAPI:
      items:
      - {path: name, fieldRef: {fieldPath: metadata.name}}
      - {path: mem, resourceFieldRef: {containerName: c, resource: limits.memory, divisor: 1Mi}}
  containers:
  - name: c
    image: busybox
    resources: {limits: {memory: 64Mi}}
    envFrom:
    - {configMapRef: {name: cm}, prefix: CM_}
    - {secretRef: {name: s}}
    - {secretRef: {name: absent, optional: true}}
    env:
    - {name: a, value: plain}
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: s, key: password}}
    - name: MAYBE
      valueFrom: {configMapKeyRef: {name: cm, key: nope, optional: true}}
"""


@pytest.fixture
def world():
    objects = {(o.kind, o.metadata.name): o for o in load_documents(OBJECTS).objects}
    (pod,) = load_documents(POD).objects
    assert isinstance(pod, Pod)
    facts = PodFacts(name="p", namespace="default", uid="u", node_name="n", pod_ip="10.0.0.2",
                     labels=pod.metadata.labels)
    return pod, facts, lambda kind, ns, name: objects.get((kind, name)) if ns == "default" else None


def test_volume_files(world):
    pod, facts, lookup = world
    files = {v.name: volume_files(v, facts, pod.spec.containers, lookup) for v in pod.spec.volumes}
    assert files["all"] == {"a": File(b"alpha", 0o644), "b": File(b"beta", 0o644), "dot.key": File(b"x", 0o644)}
    assert files["some"] == {"dir/a.txt": File(b"alpha", 0o400)}
    assert files["sec"] == {"password": File(b"hunter2", 0o400), "9lives": File(b"cat", 0o400)}
    assert files["gone"] == {}
    assert files["proj"] == {"b": File(b"beta", 0o644), "pw": File(b"hunter2", 0o644),
                             "labels": File(b'app="web"\ntier="front"', 0o644)}
    assert files["down"] == {"name": File(b"p", 0o644), "mem": File(b"64", 0o644)}


def test_a_missing_object_or_key_is_a_config_error_naming_it(world):
    pod, facts, _ = world
    with pytest.raises(ConfigError, match='configmap "cm" not found'):
        volume_files(pod.spec.volumes[0], facts, pod.spec.containers, lambda *_: None)
    only_b = load_documents("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {b: x}\n").objects[0]
    with pytest.raises(ConfigError, match="couldn't find key a in ConfigMap default/cm"):
        volume_files(pod.spec.volumes[1], facts, pod.spec.containers, lambda *_: only_b)


def test_env_from_and_key_refs(world):
    pod, _, lookup = world
    container, skipped = resolve_config_env(pod.spec.containers[0], "default", lookup)
    env = [(v.name, v.value) for v in container.env]
    assert env == [("CM_a", "alpha"), ("CM_b", "beta"), ("CM_dot.key", "x"), ("9lives", "cat"),
                   ("password", "hunter2"), ("a", "plain"), ("PASSWORD", "hunter2")]
    assert skipped == []
    with pytest.raises(ConfigError, match='secret "s" not found'):
        resolve_config_env(pod.spec.containers[0], "default",
                           lambda kind, ns, name: lookup(kind, ns, name) if kind == "ConfigMap" else None)


def test_the_atomic_writer_swaps_data_and_keeps_the_names(tmp_path):
    target = tmp_path / "vol"
    assert write_atomically(target, {"a": File(b"1", 0o644), "d/b": File(b"2", 0o600)})
    first = os.readlink(target / DATA)
    assert (target / "a").read_bytes() == b"1" and (target / "d" / "b").read_bytes() == b"2"
    assert os.readlink(target / "a") == f"{DATA}/a" and oct((target / "d" / "b").stat().st_mode & 0o777) == "0o600"
    assert not write_atomically(target, {"a": File(b"1", 0o644), "d/b": File(b"2", 0o600)})  # unchanged
    assert os.readlink(target / DATA) == first
    assert write_atomically(target, {"a": File(b"new", 0o644), "c": File(b"3", 0o644)})
    assert os.readlink(target / DATA) != first and not (target / first).exists()
    assert sorted(os.listdir(target)) == sorted(["a", "c", DATA, os.readlink(target / DATA)])
    assert (target / "a").read_bytes() == b"new"


def _docker_secret(auths: dict):
    text = json.dumps({"auths": auths})
    doc = (f"apiVersion: v1\nkind: Secret\nmetadata: {{name: r}}\ntype: kubernetes.io/dockerconfigjson\n"
           f"data: {{.dockerconfigjson: {base64.b64encode(text.encode()).decode()}}}\n")
    return load_documents(doc).objects[0]


def test_registry_auth_picks_the_image_registry():
    assert image_registry("127.0.0.1:5000/app:v1") == "127.0.0.1:5000"
    assert image_registry("library/busybox") == image_registry("busybox") == "docker.io"
    secret = _docker_secret({
        "127.0.0.1:5000": {"auth": base64.b64encode(b"u:p:w").decode()},
        "https://index.docker.io/v1/": {"username": "hub", "password": "x"},
    })
    assert registry_auth("127.0.0.1:5000/app:v1", [secret]) == {"username": "u", "password": "p:w"}
    assert registry_auth("busybox", [secret]) == {"username": "hub", "password": "x"}
    assert registry_auth("ghcr.io/a/b", [secret]) is None


def test_a_reader_never_sees_a_mix_of_two_versions(tmp_path):
    """A reader going through `..data` (as a process resolving one path after another does) sees every file of one
    version, while another thread writes 50 versions."""
    import threading

    target = tmp_path / "vol"
    write_atomically(target, {"a": File(b"0", 0o644), "b": File(b"0", 0o644)})
    mixed, reads, done = [], [0], threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                version = os.readlink(target / DATA)
                a, b = ((target / version / name).read_bytes() for name in ("a", "b"))
            except FileNotFoundError:  # the version was replaced and removed between readlink and read: retry
                continue
            reads[0] += 1
            if a != b:
                mixed.append((a, b))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(1, 51):
            value = str(i).encode()
            write_atomically(target, {"a": File(value, 0o644), "b": File(value, 0o644)})
    finally:
        done.set()
        thread.join()
    assert not mixed and reads[0] > 0
    assert (target / "a").read_bytes() == (target / "b").read_bytes() == b"50"

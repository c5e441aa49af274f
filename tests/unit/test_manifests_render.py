"""template_hash names ReplicaSets by content; to_manifest prints the user's document with defaults filled in."""

from __future__ import annotations

import copy
import dataclasses

import yaml
from test_manifests_helpers import patched, to_yaml

from meshd.manifests import TEMPLATE_HASH_LABEL, load_documents, render, template_hash, to_manifest
from meshd.manifests.hashing import ALPHABET
from meshd.model.objects import ObjectMeta, ReplicaSet


def template_of(doc: dict) -> object:
    (obj,) = load_documents(to_yaml(doc)).objects
    return obj.template


def test_hash_shape_and_golden_value() -> None:
    value = template_hash(template_of(patched("deployment", "", None)))
    assert len(value) == 10 and set(value) <= set(ALPHABET)
    # pinned: a change here renames every ReplicaSet, i.e. rolls every Deployment on upgrade
    assert value == "jgp8gzmwsk"


def test_hash_ignores_formatting_and_explicit_defaults() -> None:
    base = template_hash(template_of(patched("deployment", "", None)))
    flow = load_documents(yaml.safe_dump(patched("deployment", "", None), default_flow_style=True)).objects[0]
    assert template_hash(flow.template) == base
    explicit = patched("deployment", "spec.template.spec.containers.0.imagePullPolicy", "IfNotPresent")
    explicit["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    explicit["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30.0
    explicit["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["periodSeconds"] = 10
    assert template_hash(template_of(explicit)) == base
    # the object's own fields and where it lives are not the template
    other = patched("deployment", "spec.replicas", 7)
    other["metadata"]["namespace"] = "prod"
    other["metadata"]["name"] = "other"
    other["spec"]["strategy"] = {"type": "Recreate"}
    assert template_hash(template_of(other)) == base
    labelled = patched("deployment", f"spec.template.metadata.labels.{TEMPLATE_HASH_LABEL}", "abc")
    assert template_hash(template_of(labelled)) == base


def test_hash_changes_with_the_template() -> None:
    base = template_hash(template_of(patched("deployment", "", None)))
    changes = [
        ("spec.template.spec.containers.0.image", "nginx:1.26"),
        ("spec.template.spec.containers.0.env", [{"name": "A", "value": "1"}]),
        ("spec.template.spec.containers.0.command", ["nginx"]),
        ("spec.template.spec.containers.0.resources", {"limits": {"memory": "64Mi"}}),
        ("spec.template.metadata.annotations", {"kubectl.kubernetes.io/restartedAt": "2024-01-01T00:00:00Z"}),
        ("spec.template.metadata.labels.tier", "front"),
        ("spec.template.spec.containers.0.readinessProbe.periodSeconds", 0.5),
    ]
    hashes = {template_hash(template_of(patched("deployment", path, value))) for path, value in changes}
    assert base not in hashes and len(hashes) == len(changes)


def test_to_manifest_fills_defaults_and_keeps_user_values() -> None:
    doc = patched("deployment", "spec.template.spec.containers.0.resources", {"limits": {"cpu": "0.5"}})
    doc["status"] = {"replicas": 1}
    (dep,) = load_documents(to_yaml(doc)).objects
    out = to_manifest(dep)
    assert out["metadata"]["namespace"] == "default"
    assert out["status"] == {"replicas": 1}  # the user's document, not a re-rendering
    container = out["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["cpu"] == "0.5"  # as written
    assert container["resources"]["requests"]["cpu"] == "500m"  # defaulted from the limit
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["readinessProbe"]["periodSeconds"] == 10
    assert out["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
    }
    assert out["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert dep.raw == doc  # printing never changes the stored document
    out["metadata"]["name"] = "changed"
    assert dep.raw["metadata"]["name"] == "web"


def test_to_manifest_of_list_items_names_kind_and_version() -> None:
    items = [{"metadata": {"name": "a"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}]
    (pod,) = load_documents(to_yaml({"apiVersion": "v1", "kind": "PodList", "items": items})).objects
    out = to_manifest(pod)
    assert (out["apiVersion"], out["kind"], out["metadata"]["namespace"]) == ("v1", "Pod", "default")


def test_objects_made_in_code_render_from_their_fields() -> None:
    (dep,) = load_documents(to_yaml(patched("deployment", "", None))).objects
    name = f"web-{template_hash(dep.template)}"
    labels = {**dep.template.metadata.labels, TEMPLATE_HASH_LABEL: template_hash(dep.template)}
    template = dataclasses.replace(
        dep.template, metadata=dataclasses.replace(dep.template.metadata, labels=labels)
    )
    rs = ReplicaSet(
        metadata=ObjectMeta(name=name, labels=labels), replicas=3, selector=dep.selector, template=template
    )
    out = to_manifest(rs)
    assert out == render(rs)
    assert out["kind"] == "ReplicaSet" and out["metadata"]["name"] == name
    (again,) = load_documents(yaml.safe_dump(out)).objects
    assert again == rs
    assert template_hash(again.template) == template_hash(dep.template)


def test_service_renders_headless_and_ports() -> None:
    doc = patched("service", "spec.clusterIP", "None")
    (svc,) = load_documents(to_yaml(doc)).objects
    rendered = render(svc)
    assert rendered["spec"]["clusterIP"] == "None"
    assert rendered["spec"]["ports"] == [{"port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert load_documents(yaml.safe_dump(rendered)).objects == (svc,)
    assert copy.deepcopy(rendered) == render(svc)


def test_env_value_from_renders_and_loads_back_the_same() -> None:
    env = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "containerName": "web"}}},
        {"name": "PLAIN", "value": "x"},
    ]
    doc = patched("deployment", "spec.template.spec.containers.0.env", env)
    (dep,) = load_documents(to_yaml(doc)).objects
    (again,) = load_documents(yaml.safe_dump(render(dep))).objects  # what a Deployment's ReplicaSet is made of
    assert again.template == dep.template
    rendered = render(dep)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert rendered[0] == {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                                         "fieldPath": "status.podIP"}}}
    assert rendered[2]["valueFrom"]["resourceFieldRef"] == {"resource": "limits.memory", "divisor": "1Mi"}

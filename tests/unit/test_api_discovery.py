"""Discovery, OpenAPI and Status documents, generated from the one table of kinds."""

from __future__ import annotations

import pytest
from aiohttp import web

from meshd.api import discovery, openapi, status
from meshd.api.kinds import KINDS
from meshd.manifests import ManifestError


def _resources(group: str, version: str) -> dict[str, dict]:
    document = discovery.api_resource_list(group, version)
    assert document is not None
    return {r["name"]: r for r in document["resources"]}


@pytest.mark.parametrize(("group", "name", "kind", "short", "namespaced"), [
    ("", "pods", "Pod", ["po"], True),
    ("", "services", "Service", ["svc"], True),
    ("", "endpoints", "Endpoints", ["ep"], True),
    ("", "events", "Event", ["ev"], True),
    ("events.k8s.io", "events", "Event", ["ev"], True),
    ("apps", "deployments", "Deployment", ["deploy"], True),
    ("apps", "replicasets", "ReplicaSet", ["rs"], True),
])
def test_every_kind_is_discoverable_with_its_short_names(group, name, kind, short, namespaced):
    entry = _resources(group, "v1")[name]
    assert (entry["kind"], entry.get("shortNames"), entry["namespaced"]) == (kind, short, namespaced)
    assert {"get", "list", "watch"} <= set(entry["verbs"])
    assert entry["singularName"] == kind.lower()


def test_subresources_are_listed_with_their_kind():
    apps = _resources("apps", "v1")
    assert apps["deployments/scale"]["kind"] == "Scale"
    assert (apps["deployments/scale"]["group"], apps["deployments/scale"]["version"]) == ("autoscaling", "v1")
    assert apps["deployments/status"]["kind"] == "Deployment"
    core = _resources("", "v1")
    assert core["pods/log"]["verbs"] == ["get"]
    assert "all" in core["pods"]["categories"] and "categories" not in core["events"]


def test_groups_and_versions():
    assert discovery.api_versions("h:1")["versions"] == ["v1"]
    names = [g["name"] for g in discovery.api_group_list()["groups"]]
    assert {"apps", "batch", "coordination.k8s.io", "storage.k8s.io", "networking.k8s.io",
            "metrics.k8s.io"} <= set(names) and names[0] == "apps"
    assert {r["name"] for r in discovery.api_resource_list("batch", "v1")["resources"]} == {
        "jobs", "jobs/status", "cronjobs", "cronjobs/status"}
    assert discovery.api_resource_list("batch", "v1beta1") is None
    assert discovery.api_resource_list("example.com", "v1") is None
    assert discovery.api_resource_list("apps", "v2") is None


def test_aggregated_discovery_holds_the_same_resources():
    core = discovery.aggregated(core=True)
    assert [i["metadata"]["name"] for i in core["items"]] == [""]
    resources = {r["resource"]: r for r in core["items"][0]["versions"][0]["resources"]}
    assert resources["pods"]["scope"] == "Namespaced"
    assert [s["subresource"] for s in resources["pods"]["subresources"]] == ["log", "status", "eviction"]
    eviction = resources["pods"]["subresources"][2]  # what kubectl drain looks for: policy/v1 Eviction
    assert eviction["responseKind"] == {"group": "policy", "version": "v1", "kind": "Eviction"}
    assert eviction["verbs"] == ["create"]
    listed = {r["name"]: r for r in discovery.api_resource_list("", "v1")["resources"]}
    assert (listed["pods/eviction"]["group"], listed["pods/eviction"]["version"]) == ("policy", "v1")
    assert {"delete", "patch"} <= set(listed["nodes"]["verbs"])
    groups = discovery.aggregated(core=False)
    assert {"apps", "batch", "coordination.k8s.io", "storage.k8s.io", "networking.k8s.io", "metrics.k8s.io"} <= {
        i["metadata"]["name"] for i in groups["items"]}


@pytest.mark.parametrize(("accept", "aggregated"), [
    ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json", True),
    ("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json", False),
    ("application/json", False),
    ("", False),
    ("application/json, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", False),
])
def test_aggregated_discovery_only_when_asked_first(accept, aggregated):
    assert discovery.wants_aggregated(accept) is aggregated


def test_version_says_meshd():
    info = discovery.version_info("0.1.0")
    assert info["gitVersion"].endswith("-meshd")
    assert info["gitVersion"] == f"v{info['major']}.{info['minor']}.0-meshd"


def test_openapi_documents_every_kind_with_its_group_version_kind():
    definitions = openapi.swagger()["definitions"]
    for kind in KINDS:
        name = openapi.definition_name(kind.kind)
        assert definitions[name]["x-kubernetes-group-version-kind"] == [
            {"group": kind.group, "version": kind.version, "kind": kind.kind}]
        assert name + "List" in definitions
    index = openapi.v3_index()["paths"]
    assert {"api/v1", "apis/apps/v1", "apis/batch/v1", "apis/storage.k8s.io/v1", "apis/networking.k8s.io/v1"} <= set(index)
    document = openapi.v3_document("apis/apps/v1")
    assert document is not None and "io.k8s.api.apps.v1.Deployment" in document["components"]["schemas"]
    assert "io.k8s.api.batch.v1.CronJob" in openapi.v3_document("apis/batch/v1")["components"]["schemas"]
    assert openapi.v3_document("apis/batch/v1beta1") is None


def test_every_reference_resolves():
    for prefix, document in (("#/definitions/", openapi.swagger()["definitions"]),
                             ("#/components/schemas/", openapi.definitions("#/components/schemas/"))):
        text = repr(document)
        for ref in {part.split("'")[0] for part in text.split("'$ref': '")[1:]}:
            assert ref.removeprefix(prefix) in document, ref


def test_statuses_name_their_reason_and_object():
    body = status.status(404, 'pods "web" not found')
    assert (body["reason"], body["details"]) == ("NotFound", {"name": "web", "kind": "pods"})
    assert status.status(409, "x", reason="AlreadyExists")["reason"] == "AlreadyExists"
    error = ManifestError("not supported", kind="Deployment", name="web", path=("spec", "volumes", 0, "hostPath"))
    invalid = status.invalid(error)
    assert invalid["code"] == 422 and invalid["reason"] == "Invalid"
    assert invalid["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "message": "not supported", "field": "spec.volumes[0].hostPath"}]


@pytest.mark.parametrize(("error", "code", "reason"), [
    (web.HTTPNotFound(), 404, "NotFound"),
    (web.HTTPMethodNotAllowed("PUT", ["GET"]), 405, "MethodNotAllowed"),
    (web.HTTPUnsupportedMediaType(text="unsupported content type"), 415, "UnsupportedMediaType"),
    (web.HTTPRequestEntityTooLarge(max_size=1, actual_size=2), 413, "RequestEntityTooLarge"),
])
def test_aiohttp_errors_become_statuses(error, code, reason):
    import json

    answer = status.from_http_exception(error, "PUT", "/x")
    body = json.loads(answer.text or "")
    assert (answer.status, body["kind"], body["code"], body["reason"]) == (code, "Status", code, reason)
    assert answer.content_type == "application/json"


def test_openapi_paths_document_only_the_verbs_a_kind_has():
    paths = openapi.swagger()["paths"]
    deployment = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert set(deployment) == {"get", "put", "patch", "delete"}  # what meshd.api.writes serves
    assert deployment["get"]["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1",
                                                                    "kind": "Deployment"}
    assert set(paths["/api/v1/namespaces/{namespace}/pods"]) == {"get", "post", "delete"}  # delete: deletecollection
    assert set(paths["/api/v1/namespaces/{namespace}/endpoints/{name}"]) == {"get"}  # read-only

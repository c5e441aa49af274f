"""Field selectors, pages, Tables and watch events: the pure steps between a list request and its answer."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meshd.api import fields, listing, paging, table
from meshd.api.kinds import DEPLOYMENT, EVENT, POD, SERVICE
from meshd.api.watchwindow import bookmark

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def pod(name: str, namespace: str = "default", *, phase: str = "Running", node: str = "vm",
        labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {},
                         "creationTimestamp": "2026-01-01T11:59:00Z"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": phase, "podIP": "10.0.0.1",
                       "containerStatuses": [{"name": "c", "ready": phase == "Running", "restartCount": 0,
                                              "state": {"running": {}} if phase == "Running" else {}}]}}


EVENT_OBJ = {"kind": "Event", "metadata": {"name": "web.1", "namespace": "default"},
             "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "uid": "u-1"},
             "reason": "Killing", "type": "Normal", "source": {"component": "meshd"}}


@pytest.mark.parametrize(("text", "expected"), [
    ("", ()),
    (",", ()),
    ("metadata.name=a,,b=c", (fields.FieldRequirement("metadata.name", "a", True),
                              fields.FieldRequirement("b", "c", True))),
    ("metadata.name=web", (fields.FieldRequirement("metadata.name", "web", True),)),
    ("metadata.name==web", (fields.FieldRequirement("metadata.name", "web", True),)),
    ("status.phase!=Running,spec.nodeName=vm", (fields.FieldRequirement("status.phase", "Running", False),
                                                fields.FieldRequirement("spec.nodeName", "vm", True))),
    ("spec.nodeName=", (fields.FieldRequirement("spec.nodeName", "", True),)),
    (r"metadata.name=a\,b", (fields.FieldRequirement("metadata.name", "a,b", True),)),
    (r"metadata.name=a\=b", (fields.FieldRequirement("metadata.name", "a=b", True),)),
    (" metadata.name = web ", (fields.FieldRequirement("metadata.name", " web", True),)),
])
def test_field_selectors_parse(text, expected):
    assert fields.parse_field_selector(text) == expected


@pytest.mark.parametrize("text", ["metadata.name", "=web", "metadata.name=a\\", "metadata.name=a\\x",
                                  "metadata.name=a=b"])
def test_malformed_field_selectors_are_errors(text):
    with pytest.raises(fields.FieldSelectorError):
        fields.parse_field_selector(text)


@pytest.mark.parametrize(("kind", "selector", "supported"), [
    ("Pod", "metadata.name=x", True),
    ("Pod", "metadata.namespace=x", True),
    ("Pod", "status.phase=Running", True),
    ("Pod", "spec.nodeName=vm", True),
    ("Pod", "spec.foo=bar", False),
    ("Pod", "metadata.labels=x", False),
    ("Service", "spec.clusterIP=None", True),
    ("Service", "status.phase=Running", False),
    ("Deployment", "metadata.name=web", True),
    ("Deployment", "spec.replicas=2", False),
    ("Event", "involvedObject.name=web", True),
    ("Event", "involvedObject.uid=u", True),
    ("Event", "reason=Killing", True),
    ("Event", "message=x", False),
])
def test_only_indexed_fields_are_supported(kind, selector, supported):
    requirements = fields.parse_field_selector(selector)
    if supported:
        fields.check_supported(kind, requirements)
    else:
        with pytest.raises(fields.FieldSelectorError, match="field label not supported"):
            fields.check_supported(kind, requirements)


@pytest.mark.parametrize(("obj", "selector", "selected"), [
    (pod("web"), "metadata.name=web", True),
    (pod("web"), "metadata.name=nope", False),
    (pod("web"), "metadata.name!=web", False),
    (pod("web", "prod"), "metadata.namespace=prod", True),
    (pod("web", phase="Pending"), "status.phase=Running", False),
    (pod("web", phase="Pending"), "status.phase!=Running", True),
    (pod("web", node=""), "spec.nodeName=", True),
    (pod("web"), "spec.nodeName=vm,status.phase=Running", True),
    (pod("web"), "spec.restartPolicy=Always", True),  # defaulted as the API server does
    (EVENT_OBJ, "involvedObject.kind=Pod,involvedObject.name=web", True),
    (EVENT_OBJ, "involvedObject.uid=u-2", False),
    (EVENT_OBJ, "source=meshd", True),
])
def test_field_selectors_match(obj, selector, selected):
    assert fields.matches(fields.parse_field_selector(selector), obj) is selected


def _names(page: paging.Page) -> list[str]:
    return [o["metadata"]["name"] for o in page.items]


def test_limit_and_continue_walk_the_whole_list_once():
    items = [pod(n) for n in ("c", "a", "e", "b", "d")]
    first = paging.paginate(items, limit=2, token=None, resource_version="7")
    assert (_names(first), first.remaining) == (["a", "b"], 3)
    second = paging.paginate(items, limit=2, token=first.continue_token, resource_version="7")
    third = paging.paginate(items, limit=2, token=second.continue_token, resource_version="7")
    assert (_names(second), _names(third), third.continue_token) == (["c", "d"], ["e"], "")


def test_no_limit_or_a_larger_one_returns_everything_without_a_token():
    items = [pod(n) for n in ("b", "a")]
    assert _names(paging.paginate(items, limit=None, token=None, resource_version="1")) == ["b", "a"]
    page = paging.paginate(items, limit=5, token=None, resource_version="1")
    assert (_names(page), page.continue_token) == (["a", "b"], "")


@pytest.mark.parametrize(("text", "limit"), [(None, None), ("", None), ("0", None), ("3", 3)])
def test_limits(text, limit):
    assert paging.parse_limit(text) == limit


@pytest.mark.parametrize("text", ["-1", "two"])
def test_bad_limits_are_errors(text):
    with pytest.raises(ValueError, match="limit"):
        paging.parse_limit(text)


@pytest.mark.parametrize("token", ["garbage", "e30", paging.encode_token(("a", "b"), "1")[:-3]])
def test_a_continue_token_meshd_did_not_make_is_an_error(token):
    with pytest.raises(ValueError, match="continue"):
        paging.decode_token(token)


TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io," \
               "application/json"


@pytest.mark.parametrize(("accept", "version"), [
    (TABLE_ACCEPT, "v1"),
    ("application/json;as=Table;v=v1beta1;g=meta.k8s.io", "v1beta1"),
    ("application/json", None),
    ("", None),
    ("application/json, application/json;as=Table;v=v1;g=meta.k8s.io", None),
    ("application/json;as=Table;v=v2;g=meta.k8s.io,application/json", None),
])
def test_tables_when_asked_before_plain_json(accept, version):
    assert table.table_version(accept) == version


def test_a_pod_table_has_kubectls_columns_and_the_metadata():
    body = table.table(POD, [pod("web")], NOW)
    names = [c["name"].upper() for c in body["columnDefinitions"]]
    assert names == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE",
                     "READINESS GATES"]
    assert [c["priority"] for c in body["columnDefinitions"]] == [0] * 5 + [1] * 4
    row = body["rows"][0]
    assert row["cells"] == ["web", "1/1", "Running", "0", "60s", "10.0.0.1", "vm", "<none>", "<none>"]
    assert row["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": pod("web")["metadata"]}
    assert "object" not in table.table(POD, [pod("web")], NOW, include_object="None")["rows"][0]
    assert table.table(POD, [pod("web")], NOW, include_object="Object")["rows"][0]["object"] == pod("web")


@pytest.mark.parametrize(("kind", "header"), [
    (DEPLOYMENT, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]),
    (SERVICE, ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]),
    (EVENT, ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]),
])
def test_other_kinds_columns(kind, header):
    columns = table.column_definitions(kind)
    assert [c["name"].upper() for c in columns if c["priority"] == 0] == header


def test_a_list_query_honours_every_option_or_refuses():
    query = listing.parse_query(POD, {"fieldSelector": "status.phase=Running", "labelSelector": "app=web",
                                      "limit": "1", "watch": "true", "timeoutSeconds": "5",
                                      "sendInitialEvents": "true", "allowWatchBookmarks": "true"}, TABLE_ACCEPT)
    assert (query.limit, query.watch, query.timeout_seconds, query.table) == (1, True, 5.0, "v1")
    assert query.send_initial_events and query.bookmarks
    for bad in ({"fieldSelector": "spec.foo=x"}, {"labelSelector": "a in"}, {"limit": "x"},
                {"continue": "garbage"}, {"timeoutSeconds": "soon"}, {"timeoutSeconds": "nan"},
                {"timeoutSeconds": "-1"}, {"timeoutSeconds": "inf"}, {"includeObject": "All"}):
        with pytest.raises(ValueError):
            listing.parse_query(POD, bad, "")


def test_a_list_body_selects_then_pages():
    objects = [pod("a", labels={"app": "web"}), pod("b", labels={"app": "web"}, phase="Pending"),
               pod("c", labels={"app": "db"})]
    query = listing.parse_query(POD, {"labelSelector": "app=web", "fieldSelector": "status.phase=Running"}, "")
    body = listing.list_body(POD, query, objects, resource_version="9", now=NOW)
    assert (body["kind"], body["apiVersion"], body["metadata"]) == ("PodList", "v1", {"resourceVersion": "9"})
    assert [o["metadata"]["name"] for o in body["items"]] == ["a"]
    paged = listing.list_body(POD, listing.parse_query(POD, {"limit": "2"}, ""), objects, resource_version="9",
                              now=NOW)
    assert len(paged["items"]) == 2 and paged["metadata"]["remainingItemCount"] == 1
    nope = listing.parse_query(POD, {"fieldSelector": "metadata.name=nope"}, "")
    assert listing.list_body(POD, nope, objects, resource_version="9", now=NOW)["items"] == []


def test_the_initial_events_bookmark():
    mark = bookmark(POD.kind, POD.api_version, 42, initial_events_end=True)
    assert mark == {"kind": "Pod", "apiVersion": "v1", "metadata": {
        "resourceVersion": "42", "annotations": {"k8s.io/initial-events-end": "true"}}}


def test_the_node_and_namespaces_as_kubectl_lists_them():
    from meshd.api import cluster
    from meshd.api.kinds import NAMESPACE, NODE

    node = cluster.node("vm", created=NOW.timestamp() - 120, cpu_millicores=1500, memory_bytes=8 * 2**30,
                        address="127.0.0.1", runtime="docker")
    assert node["status"]["capacity"] == {"cpu": "1500m", "memory": "8388608Ki"}
    cells = table.table(NODE, [node], NOW)["rows"][0]["cells"]
    assert cells[:5] == ["vm", "Ready", "<none>", "2m", "v1.37.0-meshd"] and cells[5] == "127.0.0.1"
    ns = cluster.namespace("prod", created=None)
    assert table.table(NAMESPACE, [ns], NOW)["rows"][0]["cells"][:2] == ["prod", "Active"]
    assert fields.matches(fields.parse_field_selector("status.phase=Active"), ns)
    assert fields.matches(fields.parse_field_selector("spec.unschedulable=false"), node)

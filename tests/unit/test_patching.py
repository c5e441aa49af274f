"""The patch formats as pure functions: JSON merge, JSON patch, strategic merge (with kubectl's directives)."""

from __future__ import annotations

import pytest

from meshd.api.patching import (
    APPLY,
    JSON_PATCH,
    MERGE,
    STRATEGIC,
    PatchError,
    apply_patch,
    merge_patch,
    parse_body,
    strategic_merge,
)

POD_SPEC = {"containers": [
    {"name": "web", "image": "a", "ports": [{"containerPort": 80}, {"containerPort": 81}],
     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
    {"name": "side", "image": "s"}]}


@pytest.mark.parametrize(("target", "patch", "expected"), [
    ({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": None, "e": 4}}, {"a": 1, "b": {"d": 3, "e": 4}}),
    ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),  # lists replace
    ({"a": 1}, {"a": {"b": 1}}, {"a": {"b": 1}}),
    ({"a": {"b": 1}}, {"a": 5}, {"a": 5}),
    ({"a": 1}, {"x": None}, {"a": 1}),  # deleting what is not there is no error
])
def test_merge_patch(target, patch, expected):
    assert merge_patch(target, patch) == expected


@pytest.mark.parametrize(("patch", "expected"), [
    ({"containers": [{"name": "web", "image": "b"}]},  # merged by name: the rest of the container is kept
     [("web", "b", 2), ("side", "s", None)]),
    ({"containers": [{"name": "new", "image": "n"}]}, [("web", "a", 2), ("side", "s", None), ("new", "n", None)]),
    ({"containers": [{"name": "side", "$patch": "delete"}]}, [("web", "a", 2)]),
    ({"containers": [{"name": "web", "ports": [{"containerPort": 82}]}]}, [("web", "a", 3), ("side", "s", None)]),
    ({"containers": [{"name": "web", "ports": [{"containerPort": 80, "$patch": "delete"}]}]},
     [("web", "a", 1), ("side", "s", None)]),
    ({"containers": [{"$patch": "replace"}, {"name": "only", "image": "o"}]}, [("only", "o", None)]),
    ({"$setElementOrder/containers": [{"name": "side"}, {"name": "web"}],
      "containers": [{"name": "web", "image": "c"}]}, [("side", "s", None), ("web", "c", 2)]),
])
def test_strategic_merge_merges_containers_by_name(patch, expected):
    merged = strategic_merge(POD_SPEC, patch)
    assert [(c["name"], c["image"], len(c["ports"]) if "ports" in c else None)
            for c in merged["containers"]] == expected
    assert POD_SPEC["containers"][0]["image"] == "a"  # the input is not changed


@pytest.mark.parametrize(("target", "patch", "expected"), [
    ({"env": [{"name": "A", "value": "1"}]}, {"env": [{"name": "A", "value": None}]}, {"env": [{"name": "A"}]}),
    ({"ports": [{"port": 80, "name": "http"}]}, {"ports": [{"port": 80, "targetPort": 8080}]},
     {"ports": [{"port": 80, "name": "http", "targetPort": 8080}]}),  # a Service's ports merge by port
    ({"args": ["a", "b"]}, {"args": ["c"]}, {"args": ["c"]}),  # keyless lists are replaced
    ({"finalizers": ["a"]}, {"finalizers": ["b"]}, {"finalizers": ["a", "b"]}),
    ({"finalizers": ["a", "b"]}, {"$deleteFromPrimitiveList/finalizers": ["a"]}, {"finalizers": ["b"]}),
    ({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}},
     {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}, {"strategy": {"type": "Recreate"}}),
    ({"a": {"b": 1, "c": 2}}, {"a": {"$patch": "replace", "d": 3}}, {"a": {"d": 3}}),
    ({"a": {"b": 1}, "x": 1}, {"a": {"$patch": "delete"}}, {"x": 1}),
    ({"a": 1, "b": 2}, {"b": None}, {"a": 1}),
])
def test_strategic_merge_directives(target, patch, expected):
    assert strategic_merge(target, patch) == expected


@pytest.mark.parametrize("patch", [
    {"a": {"$patch": "explode"}},
    {"$bogus": 1},
    {"containers": [{"image": "no-name"}]},
    {"$setElementOrder/containers": "web"},
])
def test_a_malformed_strategic_patch_is_refused(patch):
    with pytest.raises(PatchError):
        strategic_merge(POD_SPEC, patch)


@pytest.mark.parametrize(("content_type", "patch", "expected"), [
    (MERGE, {"spec": {"replicas": 3}}, 3),
    (STRATEGIC, {"spec": {"replicas": 4}}, 4),
    (APPLY, {"spec": {"replicas": 5}}, 5),
    (JSON_PATCH, [{"op": "replace", "path": "/spec/replicas", "value": 6}], 6),
    (JSON_PATCH, [{"op": "test", "path": "/spec/replicas", "value": 2},
                  {"op": "add", "path": "/spec/replicas", "value": 7}], 7),
    (JSON_PATCH, [{"op": "copy", "from": "/spec/replicas", "path": "/spec/x"},
                  {"op": "move", "from": "/spec/x", "path": "/spec/y"}, {"op": "remove", "path": "/spec/y"}], 2),
])
def test_apply_patch_by_media_type(content_type, patch, expected):
    assert apply_patch(content_type, {"spec": {"replicas": 2}}, patch)["spec"] == {"replicas": expected}


@pytest.mark.parametrize(("content_type", "patch"), [
    (JSON_PATCH, [{"op": "test", "path": "/spec/replicas", "value": 9}]),  # a failing test
    (JSON_PATCH, [{"op": "remove", "path": "/spec/nope"}]),
    (JSON_PATCH, [{"op": "explode", "path": "/spec"}]),
    (JSON_PATCH, {"op": "add"}),
    (MERGE, [1, 2]),
    ("application/xml", {}),
])
def test_a_patch_that_does_not_apply_is_a_patch_error(content_type, patch):
    with pytest.raises(PatchError):
        apply_patch(content_type, {"spec": {"replicas": 2}}, patch)


def test_parse_body():
    assert parse_body(APPLY, b"spec:\n  replicas: 2\n") == {"spec": {"replicas": 2}}
    assert parse_body(MERGE, b'{"a": 1}') == {"a": 1}
    with pytest.raises(PatchError):
        parse_body(MERGE, b"{not json")

"""meshd.api.fieldsets: the FieldsV1 encoding, Update ownership, server-side apply conflicts and removals."""

from __future__ import annotations

import copy
import json

import pytest

from meshd.api import fieldsets as fs

DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment",
          "metadata": {"name": "web", "uid": "u", "labels": {"app": "web"}},
          "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                   "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                       {"name": "web", "image": "nginx", "ports": [{"containerPort": 80}],
                        "env": [{"name": "A", "value": "1"}]}]}}},
          "status": {"replicas": 2}}


def mgr(name: str, operation: str = "Apply", subresource: str = "") -> fs.Manager:
    return fs.Manager(name, operation, "apps/v1", "2026-01-01T00:00:00Z", subresource)


def with_replicas(obj: dict, n: int) -> dict:
    return {**obj, "spec": {**obj["spec"], "replicas": n}}


@pytest.mark.parametrize("path, text", [
    (("f:spec", "f:replicas"), ".spec.replicas"),
    (("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"web"}', "f:image"),
     '.spec.template.spec.containers[name="web"].image'),
    (("f:spec", "f:ports", 'k:{"port":80,"protocol":"TCP"}'), '.spec.ports[port=80,protocol="TCP"]'),
    (("f:metadata", "f:finalizers", 'v:"x"'), '.metadata.finalizers[="x"]'),
])
def test_paths_print_as_the_api_server_prints_them(path, text):
    assert fs.path_string(path) == text


def test_an_applied_configuration_owns_its_leaves_and_keyed_items_in_fieldsv1():
    assert fs.encode(fs.field_set(DEPLOY)) == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:containers": {'k:{"name":"web"}': {
                ".": {}, "f:env": {'k:{"name":"A"}': {".": {}, "f:name": {}, "f:value": {}}},
                "f:image": {}, "f:name": {},
                "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}}}}}}}


@pytest.mark.parametrize("tree", [
    {"f:spec": {"f:replicas": {}}},
    {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}},
    {"f:spec": {"f:containers": {'k:{"name":"a"}': {".": {}, "f:image": {}}}}},
])
def test_fieldsv1_decodes_to_what_it_encodes(tree):
    assert fs.encode(fs.decode(tree)) == tree


@pytest.mark.parametrize("bad", [[], {"spec": {}}, {"f:spec": 3}])
def test_a_malformed_fieldsv1_is_a_value_error(bad):
    with pytest.raises(ValueError):
        fs.decode(bad)


def test_create_owns_everything_with_maps_and_a_patch_takes_what_it_changed():
    created = fs.update(None, DEPLOY, None, mgr("kubectl-client-side-apply", "Update"))
    assert [e["manager"] for e in created] == ["kubectl-client-side-apply"]
    assert created[0]["fieldsV1"]["f:metadata"] == {"f:labels": {".": {}, "f:app": {}}}
    assert "f:status" not in created[0]["fieldsV1"]
    scaled = fs.update(DEPLOY, with_replicas(DEPLOY, 5), created, mgr("kubectl", "Update", "scale"))
    assert scaled[1] == {**mgr("kubectl", "Update", "scale").entry(frozenset({("f:spec", "f:replicas")}))}
    assert scaled[1]["subresource"] == "scale"
    assert "f:replicas" not in scaled[0]["fieldsV1"]["f:spec"]


def test_an_update_that_removes_a_field_takes_it_from_every_manager():
    entries = fs.update(None, DEPLOY, None, mgr("a", "Update"))
    no_labels = {**DEPLOY, "metadata": {"name": "web"}}
    after = fs.update(DEPLOY, no_labels, entries, mgr("b", "Update"))
    assert [e["manager"] for e in after] == ["a"]  # b changed nothing that stays: no entry
    assert "f:metadata" not in after[0]["fieldsV1"]


def test_apply_conflicts_with_another_manager_on_a_value_it_changes():
    entries = fs.update(None, DEPLOY, None, mgr("kubectl-client-side-apply", "Update"))
    with pytest.raises(fs.ApplyConflict) as raised:
        fs.apply(DEPLOY, with_replicas(DEPLOY, 3), entries, mgr("alice"), force=False)
    assert str(raised.value) == ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using '
                                 'apps/v1: .spec.replicas')
    assert fs.conflict_causes(raised.value.conflicts) == [
        {"type": "FieldManagerConflict", "message": 'conflict with "kubectl-client-side-apply" using apps/v1',
         "field": ".spec.replicas"}]


def test_applying_the_same_value_shares_the_field_and_force_takes_it_over():
    _, entries = fs.apply(None, DEPLOY, None, mgr("alice"), force=False)
    merged, shared = fs.apply(DEPLOY, DEPLOY, entries, mgr("bob"), force=False)  # same values: no conflict
    assert [e["manager"] for e in shared] == ["alice", "bob"] and merged["spec"]["replicas"] == 2
    merged, forced = fs.apply(DEPLOY, with_replicas(DEPLOY, 4), shared, mgr("bob"), force=True)
    assert merged["spec"]["replicas"] == 4
    assert "f:replicas" not in forced[0]["fieldsV1"]["f:spec"] and "f:replicas" in forced[1]["fieldsV1"]["f:spec"]


def test_several_conflicts_are_listed_by_manager():
    entries = fs.update(None, DEPLOY, None, mgr("x", "Update"))
    changed = copy.deepcopy(with_replicas(DEPLOY, 9))
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "caddy"
    with pytest.raises(fs.ApplyConflict) as raised:
        fs.apply(DEPLOY, changed, entries, mgr("y"), force=False)
    assert str(raised.value) == ('Apply failed with 2 conflicts: conflicts with "x" using apps/v1:\n'
                                 '- .spec.replicas\n- .spec.template.spec.containers[name="web"].image')


def test_a_field_its_applier_drops_goes_unless_another_manager_owns_it():
    _, entries = fs.apply(None, DEPLOY, None, mgr("alice"), force=False)
    _, entries = fs.apply(DEPLOY, {"metadata": {"labels": {"app": "web"}}}, entries, mgr("carol"), force=False)
    dropped = {**DEPLOY, "metadata": {"name": "web"},
               "spec": {**DEPLOY["spec"], "template": {**DEPLOY["spec"]["template"], "spec": {"containers": [
                   {"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}}}}
    merged, _ = fs.apply(DEPLOY, dropped, entries, mgr("alice"), force=False)
    assert "env" not in merged["spec"]["template"]["spec"]["containers"][0]  # alice alone had A
    assert merged["metadata"]["labels"] == {"app": "web"}  # carol owns it too


def test_an_object_no_manager_is_recorded_for_is_owned_before_first_apply():
    with pytest.raises(fs.ApplyConflict, match='conflict with "before-first-apply" using apps/v1: .spec.replicas'):
        fs.apply(DEPLOY, with_replicas(DEPLOY, 1), None, mgr("alice"), force=False)


def test_kubectl_takes_over_what_its_client_side_apply_last_applied_without_a_conflict():
    live = copy.deepcopy(DEPLOY)
    applied = {k: v for k, v in DEPLOY.items() if k != "status"}
    live["metadata"]["annotations"] = {fs.LAST_APPLIED: json.dumps(applied)}
    entries = fs.update(None, live, None, mgr("kubectl-client-side-apply", "Update"))
    merged, after = fs.apply(live, with_replicas(applied, 5), entries, mgr("kubectl"), force=False)
    assert merged["spec"]["replicas"] == 5
    assert "f:replicas" in after[-1]["fieldsV1"]["f:spec"] and "f:replicas" not in after[0]["fieldsV1"]["f:spec"]
    with pytest.raises(fs.ApplyConflict):  # another manager than kubectl's own: the conflict stands
        fs.apply(live, with_replicas(applied, 5), entries, mgr("dave"), force=False)
    live["spec"]["replicas"] = 7  # changed since it was last applied (by someone else): not kubectl's to take
    with pytest.raises(fs.ApplyConflict):
        fs.apply(live, with_replicas(applied, 5), fs.update(None, live, None, mgr("x", "Update")), mgr("kubectl"),
                 force=False)

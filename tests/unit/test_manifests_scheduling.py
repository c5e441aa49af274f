"""A pod spec's scheduling fields: read into PodSpec.scheduling, or refused naming the field, as the API server
validates them."""

from __future__ import annotations

from typing import Any

import pytest
from test_manifests_helpers import patched, to_yaml

from meshd.manifests import ManifestError, load_documents
from meshd.model.objects import Deployment
from meshd.model.scheduling import (
    NodeSelectorTerm,
    PodAffinityTerm,
    Requirement,
    Scheduling,
    Selector,
    Toleration,
    TopologySpreadConstraint,
)

P = "spec.template.spec"
R = "requiredDuringSchedulingIgnoredDuringExecution"
W = "preferredDuringSchedulingIgnoredDuringExecution"
HOST = "kubernetes.io/hostname"


def scheduling_of(**fields: Any) -> Scheduling:
    doc = patched("deployment", "", None)
    doc["spec"]["template"]["spec"].update(fields)
    result = load_documents(to_yaml(doc), source="d.yaml")
    assert result.warnings == ()
    obj = result.objects[0]
    assert isinstance(obj, Deployment)
    return obj.template.spec.scheduling


def test_no_fields_ask_for_nothing() -> None:
    assert scheduling_of() == Scheduling()


def test_every_field_is_read() -> None:
    s = scheduling_of(
        nodeSelector={"disk": "ssd"}, nodeName="n1",
        affinity={
            "nodeAffinity": {
                R: {"nodeSelectorTerms": [{"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}],
                                           "matchFields": [{"key": "metadata.name", "operator": "In",
                                                            "values": ["n1"]}]}]},
                W: [{"weight": 10, "preference": {"matchExpressions": [{"key": "z", "operator": "Exists"}]}}]},
            "podAffinity": {R: [{"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": HOST,
                                 "namespaces": ["data"]}]},
            "podAntiAffinity": {W: [{"weight": 100, "podAffinityTerm": {
                "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
                "topologyKey": HOST, "namespaceSelector": {}}}]},
        },
        tolerations=[{"key": "k", "operator": "Equal", "value": "v", "effect": "NoExecute", "tolerationSeconds": 30},
                     {"operator": "Exists"}],
        topologySpreadConstraints=[{"maxSkew": 1, "topologyKey": HOST, "whenUnsatisfiable": "DoNotSchedule",
                                    "labelSelector": {"matchLabels": {"app": "web"}}, "minDomains": 3,
                                    "matchLabelKeys": ["pod-template-hash"]}],
    )
    assert s.node_selector == (("disk", "ssd"),)
    assert s.node_name == "n1"
    assert s.node_affinity is not None and s.node_affinity.required == (NodeSelectorTerm(
        (Requirement("cores", "Gt", ("4",)),), (Requirement("metadata.name", "In", ("n1",)),)),)
    assert s.node_affinity.preferred[0].weight == 10
    assert s.pod_affinity.required == (PodAffinityTerm(HOST, Selector((("app", "db"),)), ("data",)),)
    term = s.pod_anti_affinity.preferred[0].term
    assert term.all_namespaces and term.label_selector == Selector((), (Requirement("app", "In", ("web",)),))
    assert s.tolerations == (Toleration("k", "Equal", "v", "NoExecute", 30), Toleration("", "Exists"))
    assert s.topology_spread_constraints == (TopologySpreadConstraint(
        1, HOST, "DoNotSchedule", Selector((("app", "web"),)), 3, ("pod-template-hash",)),)
    assert s.matches_node("n1", {"disk": "ssd", "cores": "8"})
    assert not s.matches_node("n2", {"disk": "ssd", "cores": "8"})


def test_scheduler_name_still_warns() -> None:
    doc = patched("deployment", f"{P}.schedulerName", "other")
    assert any("schedulerName: ignored" in w for w in load_documents(to_yaml(doc)).warnings)


def _term(**fields: Any) -> dict[str, Any]:
    return {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": HOST, **fields}


def _node_req(**expr: Any) -> dict[str, Any]:
    return {"nodeAffinity": {R: {"nodeSelectorTerms": [{"matchExpressions": [expr]}]}}}


NA = f"{P}.affinity.nodeAffinity.{R}.nodeSelectorTerms[0]"
SP = f"{P}.topologySpreadConstraints[0]"
BAD: list[tuple[str, Any, str, str]] = [
    ("nodeSelector", {"disk": 1}, f"{P}.nodeSelector.disk", "expected a string"),
    ("nodeSelector", {"bad key!": "x"}, f"{P}.nodeSelector[bad key!]", "invalid key"),
    ("nodeName", "Not_A_Name", f"{P}.nodeName", "invalid name"),
    ("affinity", {"nodeAfinity": {}}, f"{P}.affinity.nodeAfinity", "did you mean nodeAffinity"),
    ("affinity", {"nodeAffinity": {R: {"nodeSelectorTerms": []}}}, f"{P}.affinity.nodeAffinity.{R}.nodeSelectorTerms",
     "at least one node selector term"),
    ("affinity", _node_req(key="disk", operator="Like", values=["x"]), f"{NA}.matchExpressions[0].operator",
     'unsupported value "Like"'),
    ("affinity", _node_req(key="disk", operator="In"), f"{NA}.matchExpressions[0].values", "must be specified"),
    ("affinity", _node_req(key="disk", operator="Exists", values=["x"]), f"{NA}.matchExpressions[0].values",
     "may not be specified"),
    ("affinity", _node_req(key="cores", operator="Gt", values=["four"]), f"{NA}.matchExpressions[0].values[0]",
     "must be an integer"),
    ("affinity", _node_req(key="cores", operator="Lt", values=["1", "2"]), f"{NA}.matchExpressions[0].values",
     "single value"),
    ("affinity", {"nodeAffinity": {R: {"nodeSelectorTerms": [{"matchFields": [
        {"key": "metadata.labels", "operator": "In", "values": ["x"]}]}]}}}, f"{NA}.matchFields[0].key",
     "metadata.name"),
    ("affinity", {"nodeAffinity": {W: [{"weight": 0, "preference": {}}]}},
     f"{P}.affinity.nodeAffinity.{W}[0].weight", "greater than or equal to 1"),
    ("affinity", {"nodeAffinity": {W: [{"weight": 101, "preference": {}}]}},
     f"{P}.affinity.nodeAffinity.{W}[0].weight", "less than or equal to 100"),
    ("affinity", {"podAffinity": {R: [{"labelSelector": {}}]}}, f"{P}.affinity.podAffinity.{R}[0].topologyKey",
     "required field is missing"),
    ("affinity", {"podAntiAffinity": {R: [_term(namespaceSelector={"matchLabels": {"a": "b"}})]}},
     f"{P}.affinity.podAntiAffinity.{R}[0].namespaceSelector", "not supported"),
    ("affinity", {"podAntiAffinity": {W: [{"weight": 5}]}}, f"{P}.affinity.podAntiAffinity.{W}[0].podAffinityTerm",
     "required field is missing"),
    ("affinity", {"podAffinity": {R: [_term(labelSelector={"matchExpressions": [
        {"key": "app", "operator": "Gt", "values": ["1"]}]})]}},
     f"{P}.affinity.podAffinity.{R}[0].labelSelector.matchExpressions[0].operator", 'unsupported value "Gt"'),
    ("tolerations", [{"value": "x"}], f"{P}.tolerations[0].operator", "must be Exists when `key` is empty"),
    ("tolerations", [{"key": "k", "operator": "Exists", "value": "x"}], f"{P}.tolerations[0].value", "must be empty"),
    ("tolerations", [{"key": "k", "effect": "Sometimes"}], f"{P}.tolerations[0].effect", 'unsupported value'),
    ("tolerations", [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}], f"{P}.tolerations[0].effect",
     "must be 'NoExecute' when `tolerationSeconds` is set"),
    ("topologySpreadConstraints", [{"maxSkew": 0, "topologyKey": HOST, "whenUnsatisfiable": "DoNotSchedule"}],
     f"{SP}.maxSkew", "greater than zero"),
    ("topologySpreadConstraints", [{"maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}], f"{SP}.topologyKey",
     "required field is missing"),
    ("topologySpreadConstraints", [{"maxSkew": 1, "topologyKey": HOST}], f"{SP}.whenUnsatisfiable",
     "required field is missing"),
    ("topologySpreadConstraints", [{"maxSkew": 1, "topologyKey": HOST, "whenUnsatisfiable": "ScheduleAnyway",
                                    "minDomains": 2}], f"{SP}.minDomains", "only be set when"),
    ("topologySpreadConstraints", [{"maxSkew": 1, "topologyKey": HOST, "whenUnsatisfiable": "DoNotSchedule"}] * 2,
     f"{P}.topologySpreadConstraints[1]", "duplicate value"),
    ("topologySpreadConstraints", [{"maxSkew": 1, "topologyKey": HOST, "whenUnsatisfiable": "DoNotSchedule",
                                    "nodeTaintsPolicy": "Maybe"}], f"{SP}.nodeTaintsPolicy", "unsupported value"),
]


@pytest.mark.parametrize(("field", "value", "where", "words"), BAD, ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD)])
def test_bad_scheduling_fields_are_refused_by_field(field: str, value: Any, where: str, words: str) -> None:
    doc = patched("deployment", f"{P}.{field}", value)
    with pytest.raises(ManifestError) as info:
        load_documents(to_yaml(doc), source="d.yaml")
    assert info.value.field_path == where, str(info.value)
    assert words in str(info.value)

"""A pod spec's scheduling fields: nodeSelector, nodeName, affinity, tolerations, topologySpreadConstraints,
validated as the API server validates them (every error names its field)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from meshd.manifests import names
from meshd.manifests.errors import FieldPath
from meshd.manifests.reader import MISSING, DocumentReader
from meshd.model.scheduling import (
    EFFECTS,
    NodeAffinity,
    NodeSelectorTerm,
    PodAffinity,
    PodAffinityTerm,
    PreferredSchedulingTerm,
    Requirement,
    Scheduling,
    Selector,
    Toleration,
    TopologySpreadConstraint,
    WeightedPodAffinityTerm,
    pairs,
)

SCHEDULING_FIELDS = ("nodeSelector", "nodeName", "affinity", "tolerations", "topologySpreadConstraints")
_REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
_PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"
_NODE_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
_LABEL_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def read_scheduling(reader: DocumentReader, spec: Mapping[str, Any], path: FieldPath) -> Scheduling:
    node_selector = reader.string_map(spec, "nodeSelector", path, check_key=names.qualified_name,
                                      check_value=names.label_value)
    node_name = reader.string(spec, "nodeName", path) or ""
    reader.check_name(node_name, path + ("nodeName",), names.dns1123_subdomain, required=False)
    node_affinity, pod_affinity, pod_anti_affinity = None, PodAffinity(), PodAffinity()
    if (value := reader.get(spec, "affinity", path)) is not MISSING:
        apath = path + ("affinity",)
        affinity = reader.mapping(value, apath)
        reader.check_fields(affinity, apath, known=("nodeAffinity", "podAffinity", "podAntiAffinity"))
        node_affinity = _node_affinity(reader, affinity, apath)
        pod_affinity = _pod_affinity(reader, affinity, "podAffinity", apath)
        pod_anti_affinity = _pod_affinity(reader, affinity, "podAntiAffinity", apath)
    return Scheduling(
        node_selector=pairs(node_selector), node_name=node_name, node_affinity=node_affinity,
        pod_affinity=pod_affinity, pod_anti_affinity=pod_anti_affinity,
        tolerations=tuple(_toleration(reader, item, path + ("tolerations", i))
                          for i, item in enumerate(reader.sequence(spec, "tolerations", path))),
        topology_spread_constraints=_spread_constraints(reader, spec, path),
    )


# --- node affinity -------------------------------------------------------------------------------------


def _node_affinity(reader: DocumentReader, affinity: Mapping[str, Any], path: FieldPath) -> NodeAffinity | None:
    value = reader.get(affinity, "nodeAffinity", path)
    if value is MISSING:
        return None
    npath = path + ("nodeAffinity",)
    node = reader.mapping(value, npath)
    reader.check_fields(node, npath, known=(_REQUIRED, _PREFERRED))
    required = None
    if (selector := reader.get(node, _REQUIRED, npath)) is not MISSING:
        rpath = npath + (_REQUIRED,)
        reader.check_fields(reader.mapping(selector, rpath), rpath, known=("nodeSelectorTerms",))
        items = reader.sequence(selector, "nodeSelectorTerms", rpath, required=True)
        if not items:
            raise reader.fail(rpath + ("nodeSelectorTerms",), "must have at least one node selector term")
        required = tuple(_node_term(reader, item, rpath + ("nodeSelectorTerms", i)) for i, item in enumerate(items))
    preferred = []
    for i, item in enumerate(reader.sequence(node, _PREFERRED, npath)):
        ppath = npath + (_PREFERRED, i)
        term = reader.mapping(item, ppath)
        reader.check_fields(term, ppath, known=("weight", "preference"))
        weight = _weight(reader, term, ppath)
        preference = _node_term(reader, reader.get(term, "preference", ppath, required=True), ppath + ("preference",))
        preferred.append(PreferredSchedulingTerm(weight, preference))
    return NodeAffinity(required=required, preferred=tuple(preferred))


def _node_term(reader: DocumentReader, value: Any, path: FieldPath) -> NodeSelectorTerm:
    term = reader.mapping(value, path)
    reader.check_fields(term, path, known=("matchExpressions", "matchFields"))
    expressions = tuple(_requirement(reader, item, path + ("matchExpressions", i), _NODE_OPERATORS)
                        for i, item in enumerate(reader.sequence(term, "matchExpressions", path)))
    fields = []
    for i, item in enumerate(reader.sequence(term, "matchFields", path)):
        fpath = path + ("matchFields", i)
        requirement = _requirement(reader, item, fpath, ("In", "NotIn"), field=True)
        if len(requirement.values) != 1:
            raise reader.fail(fpath + ("values",), "must be only one value when `operator` is 'In' or 'NotIn' "
                                                   "for node field selector")
        fields.append(requirement)
    return NodeSelectorTerm(expressions, tuple(fields))


def _requirement(reader: DocumentReader, value: Any, path: FieldPath, operators: tuple[str, ...], *,
                 field: bool = False) -> Requirement:
    item = reader.mapping(value, path)
    reader.check_fields(item, path, known=("key", "operator", "values"))
    key = reader.string(item, "key", path, required=True, allow_empty=False) or ""
    if field:
        if key != "metadata.name":
            raise reader.fail(path + ("key",), f'unsupported value "{key}" (supported: metadata.name)')
    else:
        reader.check_name(key, path + ("key",), names.qualified_name)
    reader.get(item, "operator", path, required=True)
    operator = reader.choice(item, "operator", path, operators, default="")
    values = reader.strings(item, "values", path)
    if operator in ("In", "NotIn") and not values:
        raise reader.fail(path + ("values",), "must be specified when `operator` is 'In' or 'NotIn'")
    if operator in ("Exists", "DoesNotExist") and values:
        raise reader.fail(path + ("values",), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
    if operator in ("Gt", "Lt"):
        if len(values) != 1:
            raise reader.fail(path + ("values",), "must be specified single value when `operator` is 'Lt' or 'Gt'")
        try:
            int(values[0])
        except ValueError:
            raise reader.fail(path + ("values", 0), f'must be an integer, got "{values[0]}"') from None
    if not field:
        for i, v in enumerate(values):
            if problem := names.label_value(v):
                raise reader.fail(path + ("values", i), f'invalid value "{v}": {problem}')
    return Requirement(key, cast(Any, operator), values)


def _weight(reader: DocumentReader, term: Mapping[str, Any], path: FieldPath) -> int:
    weight = reader.integer(term, "weight", path, required=True, minimum=1, maximum=100)
    assert weight is not None
    return weight


# --- pod affinity ----------------------------------------------------------------------------------------


def _pod_affinity(reader: DocumentReader, affinity: Mapping[str, Any], key: str, path: FieldPath) -> PodAffinity:
    value = reader.get(affinity, key, path)
    if value is MISSING:
        return PodAffinity()
    ppath = path + (key,)
    reader.check_fields(reader.mapping(value, ppath), ppath, known=(_REQUIRED, _PREFERRED))
    required = tuple(_pod_term(reader, item, ppath + (_REQUIRED, i))
                     for i, item in enumerate(reader.sequence(value, _REQUIRED, ppath)))
    preferred = []
    for i, item in enumerate(reader.sequence(value, _PREFERRED, ppath)):
        wpath = ppath + (_PREFERRED, i)
        weighted = reader.mapping(item, wpath)
        reader.check_fields(weighted, wpath, known=("weight", "podAffinityTerm"))
        weight = _weight(reader, weighted, wpath)
        term = _pod_term(reader, reader.get(weighted, "podAffinityTerm", wpath, required=True),
                         wpath + ("podAffinityTerm",))
        preferred.append(WeightedPodAffinityTerm(weight, term))
    return PodAffinity(required, tuple(preferred))


def _pod_term(reader: DocumentReader, value: Any, path: FieldPath) -> PodAffinityTerm:
    term = reader.mapping(value, path)
    reader.check_fields(term, path, known=("labelSelector", "namespaces", "topologyKey", "namespaceSelector",
                                           "matchLabelKeys", "mismatchLabelKeys"))
    topology_key = reader.string(term, "topologyKey", path, required=True, allow_empty=False) or ""
    reader.check_name(topology_key, path + ("topologyKey",), names.qualified_name)
    namespaces = reader.strings(term, "namespaces", path)
    for i, namespace in enumerate(namespaces):
        reader.check_name(namespace, path + ("namespaces", i), names.dns1123_label)
    all_namespaces = False
    if (ns_selector := reader.get(term, "namespaceSelector", path)) is not MISSING:
        nspath = path + ("namespaceSelector",)
        if reader.mapping(ns_selector, nspath):
            raise reader.fail(nspath, "not supported: meshd selects namespaces by name (namespaces), or all of "
                                      "them with namespaceSelector: {}")
        all_namespaces = True
    selector = _selector(reader, term, "labelSelector", path)
    match_keys = _label_keys(reader, term, "matchLabelKeys", path, selector)
    mismatch_keys = _label_keys(reader, term, "mismatchLabelKeys", path, selector)
    if both := set(match_keys) & set(mismatch_keys):
        raise reader.fail(path + ("mismatchLabelKeys",), f'"{sorted(both)[0]}" exists in both matchLabelKeys and '
                                                         "mismatchLabelKeys")
    return PodAffinityTerm(topology_key, selector, namespaces, all_namespaces, match_keys, mismatch_keys)


def _selector(reader: DocumentReader, obj: Mapping[str, Any], key: str, path: FieldPath) -> Selector | None:
    value = reader.get(obj, key, path)
    if value is MISSING:
        return None
    spath = path + (key,)
    selector = reader.mapping(value, spath)
    reader.check_fields(selector, spath, known=("matchLabels", "matchExpressions"))
    labels = reader.string_map(selector, "matchLabels", spath, check_key=names.qualified_name,
                               check_value=names.label_value)
    expressions = tuple(_requirement(reader, item, spath + ("matchExpressions", i), _LABEL_OPERATORS)
                        for i, item in enumerate(reader.sequence(selector, "matchExpressions", spath)))
    return Selector(pairs(labels), expressions)


def _label_keys(reader: DocumentReader, obj: Mapping[str, Any], key: str, path: FieldPath,
                selector: Selector | None) -> tuple[str, ...]:
    keys = reader.strings(obj, key, path)
    for i, k in enumerate(keys):
        reader.check_name(k, path + (key, i), names.qualified_name)
    if keys and selector is None:
        raise reader.fail(path + (key,), "may not be specified when `labelSelector` is not set")
    return keys


# --- tolerations -----------------------------------------------------------------------------------------


def _toleration(reader: DocumentReader, value: Any, path: FieldPath) -> Toleration:
    item = reader.mapping(value, path)
    reader.check_fields(item, path, known=("key", "operator", "value", "effect", "tolerationSeconds"))
    key = reader.string(item, "key", path) or ""
    reader.check_name(key, path + ("key",), names.qualified_name, required=False)
    operator = reader.choice(item, "operator", path, ("Equal", "Exists"), default="Equal")
    text = reader.string(item, "value", path) or ""
    if not key and operator != "Exists":
        raise reader.fail(path + ("operator",), 'must be Exists when `key` is empty, which means "match all values '
                                                'and all keys"')
    if operator == "Exists" and text:
        raise reader.fail(path + ("value",), "must be empty when `operator` is 'Exists'")
    if operator == "Equal" and (problem := names.label_value(text)):
        raise reader.fail(path + ("value",), f'invalid value "{text}": {problem}')
    effect = reader.choice(item, "effect", path, ("", *EFFECTS), default="")
    seconds = reader.integer(item, "tolerationSeconds", path, minimum=-(2**63), maximum=2**63 - 1)
    if seconds is not None and effect != "NoExecute":
        raise reader.fail(path + ("effect",), "must be 'NoExecute' when `tolerationSeconds` is set")
    return Toleration(key, cast(Any, operator), text, effect, seconds)


# --- topology spread ------------------------------------------------------------------------------------


def _spread_constraints(reader: DocumentReader, spec: Mapping[str, Any],
                        path: FieldPath) -> tuple[TopologySpreadConstraint, ...]:
    out: list[TopologySpreadConstraint] = []
    seen: set[tuple[str, str]] = set()
    for i, value in enumerate(reader.sequence(spec, "topologySpreadConstraints", path)):
        cpath = path + ("topologySpreadConstraints", i)
        item = reader.mapping(value, cpath)
        reader.check_fields(item, cpath, known=("maxSkew", "topologyKey", "whenUnsatisfiable", "labelSelector",
                                                "minDomains", "matchLabelKeys", "nodeAffinityPolicy",
                                                "nodeTaintsPolicy"))
        max_skew = reader.integer(item, "maxSkew", cpath, required=True)
        if max_skew is not None and max_skew <= 0:
            raise reader.fail(cpath + ("maxSkew",), f"must be greater than zero, got {max_skew}")
        topology_key = reader.string(item, "topologyKey", cpath, required=True, allow_empty=False) or ""
        reader.check_name(topology_key, cpath + ("topologyKey",), names.qualified_name)
        reader.get(item, "whenUnsatisfiable", cpath, required=True)
        when = reader.choice(item, "whenUnsatisfiable", cpath, ("DoNotSchedule", "ScheduleAnyway"), default="")
        if (topology_key, when) in seen:
            raise reader.fail(cpath, f'duplicate value: {{topologyKey: "{topology_key}", whenUnsatisfiable: '
                                     f'"{when}"}}')
        seen.add((topology_key, when))
        min_domains = reader.integer(item, "minDomains", cpath)
        if min_domains is not None:
            if min_domains <= 0:
                raise reader.fail(cpath + ("minDomains",), f"must be greater than zero, got {min_domains}")
            if when != "DoNotSchedule":
                raise reader.fail(cpath + ("minDomains",), "may only be set when whenUnsatisfiable is DoNotSchedule")
        selector = _selector(reader, item, "labelSelector", cpath)
        keys = _label_keys(reader, item, "matchLabelKeys", cpath, selector)
        policies = {key: reader.choice(item, key, cpath, ("Honor", "Ignore"), default=default)
                    for key, default in (("nodeAffinityPolicy", "Honor"), ("nodeTaintsPolicy", "Ignore"))}
        assert max_skew is not None
        out.append(TopologySpreadConstraint(
            max_skew, topology_key, cast(Any, when), selector, min_domains, keys,
            cast(Any, policies["nodeAffinityPolicy"]), cast(Any, policies["nodeTaintsPolicy"])))
    return tuple(out)

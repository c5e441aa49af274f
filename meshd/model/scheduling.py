"""A pod's scheduling fields (spec.nodeSelector, nodeName, affinity, tolerations, topologySpreadConstraints),
as frozen, hashable values with Kubernetes' matching rules. Read by meshd.manifests.scheduling; honoured by
meshd.scheduler."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Pairs = tuple[tuple[str, str], ...]  # a label map, hashable (sorted by key)
NodeOperator = Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


@dataclass(frozen=True)
class Toleration:
    key: str = ""  # "" with operator Exists tolerates every taint
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str = ""
    effect: str = ""  # "" tolerates every effect
    toleration_seconds: int | None = None  # NoExecute only: how long a pod stays once such a taint appears

    def tolerates(self, key: str, value: str, effect: str) -> bool:
        """Kubernetes' ToleratesTaint."""
        if self.effect and self.effect != effect:
            return False
        if self.key and self.key != key:
            return False
        return self.operator == "Exists" or self.value == value


@dataclass(frozen=True)
class Requirement:
    """A matchExpressions item (node selector or label selector): key, operator, values."""

    key: str
    operator: NodeOperator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        op = self.operator
        if op == "In":
            return value is not None and value in self.values
        if op == "NotIn":
            return value is None or value not in self.values
        if op == "Exists":
            return value is not None
        if op == "DoesNotExist":
            return value is None
        if value is None:  # Gt / Lt: the label must be an integer, as the single value is
            return False
        try:
            have, want = int(value), int(self.values[0])
        except (ValueError, IndexError):
            return False
        return have > want if op == "Gt" else have < want


@dataclass(frozen=True)
class Selector:
    """A LabelSelector with matchLabels and matchExpressions; an empty one selects everything."""

    match_labels: Pairs = ()
    match_expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return (all(labels.get(k) == v for k, v in self.match_labels)
                and all(r.matches(labels) for r in self.match_expressions))

    def with_requirements(self, extra: tuple[Requirement, ...]) -> Selector:
        return Selector(self.match_labels, self.match_expressions + extra) if extra else self


@dataclass(frozen=True)
class NodeSelectorTerm:
    """Expressions on the node's labels and fields (metadata.name), all of which must hold; an empty term
    matches no node."""

    match_expressions: tuple[Requirement, ...] = ()
    match_fields: tuple[Requirement, ...] = ()

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        if not self.match_expressions and not self.match_fields:
            return False
        fields = {"metadata.name": name}
        return (all(r.matches(labels) for r in self.match_expressions)
                and all(r.matches(fields) for r in self.match_fields))


@dataclass(frozen=True)
class PreferredSchedulingTerm:
    weight: int  # 1..100
    preference: NodeSelectorTerm


@dataclass(frozen=True)
class NodeAffinity:
    required: tuple[NodeSelectorTerm, ...] | None = None  # any term must match; None: no requirement
    preferred: tuple[PreferredSchedulingTerm, ...] = ()


@dataclass(frozen=True)
class PodAffinityTerm:
    """Pods matching `label_selector` in `namespaces` (default: the pod's own), in the same topology domain
    (nodes sharing the value of `topology_key`)."""

    topology_key: str
    label_selector: Selector | None = None  # None: selects no pod
    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False  # namespaceSelector: {}
    match_label_keys: tuple[str, ...] = ()  # key In (the pod's value), added at scheduling time
    mismatch_label_keys: tuple[str, ...] = ()  # key NotIn (the pod's value)


@dataclass(frozen=True)
class WeightedPodAffinityTerm:
    weight: int  # 1..100
    term: PodAffinityTerm


@dataclass(frozen=True)
class PodAffinity:
    """podAffinity or podAntiAffinity."""

    required: tuple[PodAffinityTerm, ...] = ()
    preferred: tuple[WeightedPodAffinityTerm, ...] = ()


@dataclass(frozen=True)
class TopologySpreadConstraint:
    max_skew: int
    topology_key: str
    when_unsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"]
    label_selector: Selector | None = None  # None: counts no pod
    min_domains: int | None = None
    match_label_keys: tuple[str, ...] = ()
    node_affinity_policy: Literal["Honor", "Ignore"] = "Honor"
    node_taints_policy: Literal["Honor", "Ignore"] = "Ignore"


@dataclass(frozen=True)
class Scheduling:
    """Where a pod may and would rather run. The default asks for nothing."""

    node_selector: Pairs = ()
    node_name: str = ""
    node_affinity: NodeAffinity | None = None
    pod_affinity: PodAffinity = PodAffinity()
    pod_anti_affinity: PodAffinity = PodAffinity()
    tolerations: tuple[Toleration, ...] = ()
    topology_spread_constraints: tuple[TopologySpreadConstraint, ...] = ()

    def matches_node(self, name: str, labels: Mapping[str, str]) -> bool:
        """nodeSelector and required node affinity (the NodeAffinity filter)."""
        if not all(labels.get(k) == v for k, v in self.node_selector):
            return False
        required = self.node_affinity.required if self.node_affinity else None
        return required is None or any(term.matches(name, labels) for term in required)


def pairs(labels: Mapping[str, str]) -> Pairs:
    return tuple(sorted(labels.items()))

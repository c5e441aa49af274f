"""Pod affinity terms and spread constraints resolved against the pod that carries them: the namespaces they
look in (its own by default) and matchLabelKeys/mismatchLabelKeys turned into requirements on its labels.
Resolved values are hashable: the scheduler counts the pods each one matches once and keeps the count."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from meshd.model.scheduling import PodAffinityTerm, Requirement, Selector, TopologySpreadConstraint, pairs
from meshd.scheduler.model import HOSTNAME, ZONE, PodInfo


@dataclass(frozen=True)
class Match:
    """Pods in `namespaces` (None: every namespace) whose labels `selector` selects (None: no pod)."""

    namespaces: frozenset[str] | None
    selector: Selector | None

    def matches(self, namespace: str, labels: Mapping[str, str]) -> bool:
        if self.selector is None:
            return False
        if self.namespaces is not None and namespace not in self.namespaces:
            return False
        return self.selector.matches(labels)


@dataclass(frozen=True)
class Term:
    """A resolved pod (anti-)affinity term: the pods it matches and the topology key it groups nodes by."""

    match: Match
    topology_key: str


@dataclass(frozen=True)
class Constraint:
    """A resolved topology spread constraint (explicit, or one of the system defaults)."""

    match: Match
    topology_key: str
    max_skew: int
    min_domains: int | None = None
    honor_affinity: bool = True
    honor_taints: bool = False


def resolve_term(term: PodAffinityTerm, owner: PodInfo) -> Term:
    if term.all_namespaces:
        namespaces = None
    else:
        namespaces = frozenset(term.namespaces or (owner.namespace,))
    selector = term.label_selector
    if selector is not None:
        extra = tuple(Requirement(k, "In", (owner.labels[k],)) for k in term.match_label_keys if k in owner.labels)
        extra += tuple(Requirement(k, "NotIn", (owner.labels[k],))
                       for k in term.mismatch_label_keys if k in owner.labels)
        selector = selector.with_requirements(extra)
    return Term(Match(namespaces, selector), term.topology_key)


def resolve_constraint(c: TopologySpreadConstraint, pod: PodInfo) -> Constraint:
    selector = c.label_selector
    if selector is not None:
        selector = selector.with_requirements(
            tuple(Requirement(k, "In", (pod.labels[k],)) for k in c.match_label_keys if k in pod.labels))
    return Constraint(Match(frozenset((pod.namespace,)), selector), c.topology_key, c.max_skew, c.min_domains,
                      c.node_affinity_policy == "Honor", c.node_taints_policy == "Honor")


def constraints(pod: PodInfo, when: str) -> tuple[Constraint, ...]:
    """The pod's constraints with whenUnsatisfiable `when`."""
    return tuple(resolve_constraint(c, pod) for c in pod.spec.scheduling.topology_spread_constraints
                 if c.when_unsatisfiable == when)


def default_constraints(pod: PodInfo) -> tuple[Constraint, ...]:
    """Kubernetes' system default spreading (ScheduleAnyway: maxSkew 3 over nodes, 5 over zones) of the pods
    its controller's selector picks; none for a pod with no such selector (a bare pod with no labels)."""
    labels = pod.labels if pod.spread_selector is None else pod.spread_selector
    if not labels:
        return ()
    match = Match(frozenset((pod.namespace,)), Selector(pairs(labels)))
    return (Constraint(match, HOSTNAME, 3), Constraint(match, ZONE, 5))


def anchor(match: Match) -> tuple[str, str] | None:
    """One label pair every pod `match` selects must carry (None: no such pair), to look matches up by."""
    if match.selector is None or not match.selector.match_labels:
        return None
    return match.selector.match_labels[0]


K = TypeVar("K", bound=Hashable)


class LabelIndex(Generic[K]):
    """Keys (terms, tuples of matches) bucketed by their anchor pair: the ones that may select a pod are
    those anchored on one of its labels, or on none."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str] | None, set[K]] = {}

    def add(self, key: K, match: Match) -> None:
        self._buckets.setdefault(anchor(match), set()).add(key)

    def discard(self, key: K, match: Match) -> None:
        bucket = self._buckets.get(anchor(match))
        if bucket is not None:
            bucket.discard(key)

    def candidates(self, labels: Mapping[str, str]) -> list[K]:
        out = list(self._buckets.get(None, ()))
        for pair in labels.items():
            bucket = self._buckets.get(pair)
            if bucket:
                out.extend(bucket)
        return out

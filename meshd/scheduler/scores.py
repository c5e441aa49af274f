"""The scores of the nodes that passed every filter, as Kubernetes' default profile computes and weighs them:
each plugin scores 0..100 (normalized over the feasible nodes), times its weight, summed."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from meshd.scheduler.filters import tolerated, untolerated
from meshd.scheduler.model import HOSTNAME, NodeInfo
from meshd.scheduler.terms import constraints, default_constraints, resolve_term

if TYPE_CHECKING:
    from meshd.scheduler.filters import Cycle

MAX = 100
Scores = dict[str, int]


def score(cycle: Cycle, nodes: Sequence[NodeInfo]) -> Scores:
    """Each node's weighted total."""
    totals = {n.name: 0 for n in nodes}
    for weight, plugin in WEIGHTED:
        for name, value in plugin(cycle, nodes).items():
            totals[name] += weight * value
    return totals


# --- NodeResourcesFit (LeastAllocated) and NodeResourcesBalancedAllocation -------------------------------------


def least_allocated(cycle: Cycle, nodes: Sequence[NodeInfo]) -> Scores:
    """The free share of cpu and memory once the pod is placed (requests, 100m/200Mi for none), averaged."""
    out = {}
    cpu, memory = cycle.nonzero
    for node in nodes:
        usage = cycle.state.usage[node.name]
        parts = [_free(node.cpu_millicores, usage.nonzero_cpu + cpu),
                 _free(node.memory_bytes, usage.nonzero_memory + memory)]
        out[node.name] = sum(parts) // len(parts)
    return out


def _free(capacity: int, requested: int) -> int:
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX // capacity


def balanced_allocation(cycle: Cycle, nodes: Sequence[NodeInfo]) -> Scores:
    """100 when cpu and memory would be used in equal shares; less the more they differ."""
    out = {}
    cpu, memory = cycle.requests
    for node in nodes:
        usage = cycle.state.usage[node.name]
        fractions = [min(1.0, used / capacity) for used, capacity in (
            (usage.cpu + cpu, node.cpu_millicores), (usage.memory + memory, node.memory_bytes)) if capacity]
        std = abs(fractions[0] - fractions[1]) / 2 if len(fractions) == 2 else 0.0
        out[node.name] = int((1 - std) * MAX)
    return out


# --- TaintToleration, NodeAffinity --------------------------------------------------------------------------


def normalize(scores: Scores, *, reverse: bool = False) -> Scores:
    """Kubernetes' DefaultNormalizeScore: scaled so the highest is 100 (reversed: the lowest)."""
    top = max(scores.values(), default=0)
    if top == 0:
        return {k: MAX for k in scores} if reverse else dict(scores)
    return {k: (MAX - MAX * v // top) if reverse else MAX * v // top for k, v in scores.items()}


def taint_toleration(cycle: Cycle, nodes: Sequence[NodeInfo]) -> Scores:
    """Fewer untolerated PreferNoSchedule taints score higher."""
    tolerations = [t for t in cycle.tolerations if t.effect in ("", "PreferNoSchedule")]
    counts = {node.name: sum(1 for taint in cycle.state.taints[node.name]
                             if taint.effect == "PreferNoSchedule" and not tolerated(tolerations, taint))
              for node in nodes}
    return normalize(counts, reverse=True)


def node_affinity(cycle: Cycle, nodes: Sequence[NodeInfo]) -> Scores:
    """The weights of the preferred node affinity terms a node matches."""
    affinity = cycle.scheduling.node_affinity
    preferred = affinity.preferred if affinity else ()
    if not preferred:
        return {}
    counts = {}
    for node in nodes:
        labels = cycle.state.labels[node.name]
        counts[node.name] = sum(p.weight for p in preferred if p.preference.matches(node.name, labels))
    return normalize(counts)


# --- PodTopologySpread (ScheduleAnyway, or the system defaults) -------------------------------------------------


def topology_spread(cycle: Cycle, nodes: Sequence[NodeInfo]) -> Scores:
    """Fewer matching pods in a node's domains score higher: each constraint adds count * log(domains + 2) +
    maxSkew - 1; the sums are reversed over the feasible nodes."""
    pod = cycle.pod
    explicit = bool(pod.spec.scheduling.topology_spread_constraints)
    cons = constraints(pod, "ScheduleAnyway") if explicit else default_constraints(pod)
    if not cons:
        return {}
    state = cycle.state
    keys = {c.topology_key for c in cons}
    ignored = {n.name for n in nodes if explicit and not all(k in state.labels[n.name] for k in keys)}
    sizes = [len({state.labels[n.name].get(c.topology_key, "") for n in nodes if n.name not in ignored})
             if c.topology_key != HOSTNAME else len(nodes) - len(ignored) for c in cons]
    weights = [math.log(size + 2) for size in sizes]
    domain_counts: list[dict[str, int]] = []
    for c in cons:  # pods in the domains of the feasible nodes, counted over every node
        wanted = {state.labels[n.name].get(c.topology_key, "") for n in nodes if n.name not in ignored}
        counts = dict.fromkeys(wanted, 0)
        if c.topology_key != HOSTNAME:
            for node in state.nodes:
                labels = state.labels[node.name]
                if explicit and not all(k in labels for k in keys):
                    continue
                if c.honor_affinity and not cycle.matches_node(node):
                    continue
                if c.honor_taints and untolerated(state.taints[node.name], cycle.tolerations):
                    continue
                value = labels.get(c.topology_key, "")
                if value and value in counts:
                    counts[value] += state.count(c.match)[node.name]
        domain_counts.append(counts)
    raw = {}
    for node in nodes:
        if node.name in ignored:
            continue
        labels, total = state.labels[node.name], 0.0
        for c, counts, weight in zip(cons, domain_counts, weights):
            here = labels.get(c.topology_key)
            if here is None:
                continue
            n = state.count(c.match)[node.name] if c.topology_key == HOSTNAME else counts.get(here, 0)
            total += n * weight + c.max_skew - 1
        raw[node.name] = round(total)
    low, high = min(raw.values(), default=0), max(raw.values(), default=0)
    out = {}
    for node in nodes:
        if node.name not in raw:
            out[node.name] = 0
        elif high == 0:
            out[node.name] = MAX
        else:
            out[node.name] = MAX * (high + low - raw[node.name]) // high
    return out


# --- InterPodAffinity (preferred; and what placed pods' terms say about this pod) -------------------------------


def inter_pod_affinity(cycle: Cycle, nodes: Sequence[NodeInfo]) -> Scores:
    """Preferred affinity adds its weight in the domains of the pods it matches, preferred anti-affinity takes
    it away; placed pods' required (weight 1) and preferred terms that match this pod count the same way.
    Scaled min..max to 0..100."""
    pod, state = cycle.pod, cycle.state
    scheduling = pod.spec.scheduling
    topology: dict[tuple[str, str], int] = {}

    def credit(term_key: str, counts: Mapping[str, int], weight: int) -> None:
        for node, n in counts.items():
            labels = state.labels.get(node)
            if n > 0 and labels is not None and term_key in labels:
                pair = (term_key, labels[term_key])
                topology[pair] = topology.get(pair, 0) + weight * n

    for sign, terms in ((1, scheduling.pod_affinity.preferred), (-1, scheduling.pod_anti_affinity.preferred)):
        for w in terms:
            term = resolve_term(w.term, pod)
            credit(term.topology_key, state.count(term.match), sign * w.weight)
    for key in state.soft_index.candidates(pod.labels):
        term, weight = key
        if term.match.matches(pod.namespace, pod.labels):
            credit(term.topology_key, state.soft[key], weight)
    if not topology:
        return {}
    raw = {n.name: sum(v for (k, value), v in topology.items() if state.labels[n.name].get(k) == value)
           for n in nodes}
    low, high = min(raw.values()), max(raw.values())
    if high == low:
        return dict.fromkeys(raw, 0)
    return {k: int(MAX * (v - low) / (high - low)) for k, v in raw.items()}


WEIGHTED: tuple[tuple[int, Callable[[Cycle, Sequence[NodeInfo]], Scores]], ...] = (
    (3, taint_toleration),
    (2, node_affinity),
    (1, least_allocated),
    (1, balanced_allocation),
    (2, topology_spread),
    (2, inter_pod_affinity),
)

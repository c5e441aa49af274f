"""The scheduler's state: nodes, the pods placed on them, and the counts its filters and scores read, kept up
to date pod by pod (`add`, `remove`) so placing one pod costs the same with 10 pods placed or 10,000."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from meshd.external.hostports import HostPort
from meshd.scheduler import filters, scores
from meshd.model.objects import PodSpec
from meshd.scheduler.model import NodeInfo, Placement, PodInfo, Taint, host_ports, nonzero_requests, requests
from meshd.scheduler.terms import LabelIndex, Match, Term, anchor, resolve_term

HARD_POD_AFFINITY_WEIGHT = 1  # what an existing pod's required affinity adds to a matching pod's score


@dataclass
class Usage:
    """What the pods placed on one node take of it."""

    pods: int = 0
    cpu: int = 0
    memory: int = 0
    nonzero_cpu: int = 0
    nonzero_memory: int = 0


@dataclass(frozen=True)
class _Entry:
    pod: PodInfo
    requests: tuple[int, int]
    nonzero: tuple[int, int]
    ports: tuple[HostPort, ...]
    anti: tuple[Term, ...]  # its required anti-affinity: repels pods these match
    soft: tuple[tuple[Term, int], ...]  # its terms that score a pod these match: (term, weight)


class Scheduler:
    """Places pods on `nodes` one at a time: `place(pod)` answers, `add(pod)` records a pod bound to a node
    (placed here or elsewhere), `remove(pod)` forgets one. Deterministic: equal scores go to the first node by
    name."""

    def __init__(self, nodes: Sequence[NodeInfo], placed: Iterable[PodInfo] = ()) -> None:
        self.nodes: tuple[NodeInfo, ...] = tuple(sorted(nodes, key=lambda n: n.name))
        self.labels: dict[str, Mapping[str, str]] = {n.name: n.effective_labels() for n in self.nodes}
        self.taints: dict[str, tuple[Taint, ...]] = {n.name: n.effective_taints() for n in self.nodes}
        self.usage: dict[str, Usage] = {n.name: Usage() for n in self.nodes}
        self.ports: dict[str, list[HostPort]] = {n.name: [] for n in self.nodes}
        self.anti: dict[Term, Counter[str]] = {}
        self.soft: dict[tuple[Term, int], Counter[str]] = {}
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._by_label: dict[tuple[str, str], set[tuple[str, str]]] = {}  # label pair -> pods carrying it
        self._counts: dict[tuple[Match, ...], Counter[str]] = {}
        self._count_index: LabelIndex[tuple[Match, ...]] = LabelIndex()  # _counts' keys, by the first match
        self.anti_index: LabelIndex[Term] = LabelIndex()  # the keys of anti
        self.soft_index: LabelIndex[tuple[Term, int]] = LabelIndex()  # the keys of soft
        for pod in placed:
            self.add(pod)

    # --- the placed pods ---------------------------------------------------------------------------------

    def add(self, pod: PodInfo) -> None:
        """Records `pod` as running on `pod.node` (replacing an earlier record of the same pod)."""
        if not pod.node:
            raise ValueError(f"pod {pod.namespace}/{pod.name} is not bound to a node")
        key = (pod.namespace, pod.name)
        if key in self._entries:
            self.remove(pod)
        entry = _entry(pod)
        self._entries[key] = entry
        for pair in pod.labels.items():
            self._by_label.setdefault(pair, set()).add(key)
        self._account(entry, 1)

    def remove(self, pod: PodInfo) -> None:
        """Forgets `pod` (by namespace and name); a pod never added is ignored."""
        key = (pod.namespace, pod.name)
        entry = self._entries.pop(key, None)
        if entry is not None:
            for pair in entry.pod.labels.items():
                holders = self._by_label.get(pair)
                if holders is not None:
                    holders.discard(key)
                    if not holders:
                        del self._by_label[pair]
            self._account(entry, -1)

    def _account(self, entry: _Entry, sign: int) -> None:
        pod, node = entry.pod, entry.pod.node
        usage = self.usage.get(node)
        if usage is not None:
            usage.pods += sign
            usage.cpu += sign * entry.requests[0]
            usage.memory += sign * entry.requests[1]
            usage.nonzero_cpu += sign * entry.nonzero[0]
            usage.nonzero_memory += sign * entry.nonzero[1]
            if sign > 0:
                self.ports[node].extend(entry.ports)
            else:
                for port in entry.ports:
                    self.ports[node].remove(port)
        for term in entry.anti:
            _bump(self.anti, self.anti_index, term, term.match, node, sign)
        for soft in entry.soft:
            _bump(self.soft, self.soft_index, soft, soft[0].match, node, sign)
        for matches in self._count_index.candidates(pod.labels):
            if all(m.matches(pod.namespace, pod.labels) for m in matches):
                self._counts[matches][node] += sign

    def count(self, *matches: Match) -> Counter[str]:
        """How many placed pods on each node every one of `matches` selects (computed once, then kept)."""
        counter = self._counts.get(matches)
        if counter is None:
            counter = Counter()
            pair = anchor(matches[0]) if matches else None
            keys = self._entries.keys() if pair is None else self._by_label.get(pair, ())
            for key in keys:
                pod = self._entries[key].pod
                if all(m.matches(pod.namespace, pod.labels) for m in matches):
                    counter[pod.node] += 1
            self._counts[matches] = counter
            self._count_index.add(matches, matches[0] if matches else Match(None, None))
        return counter

    def pods(self) -> list[PodInfo]:
        return [e.pod for e in self._entries.values()]

    # --- placing ----------------------------------------------------------------------------------------

    def place(self, pod: PodInfo) -> Placement:
        """The node for `pod`: the nodes every filter passes, the best by score; or why none fits, in
        Kubernetes' words. Does not record the pod (`add` does)."""
        if not self.nodes:
            return Placement(None, "no nodes available to schedule pods")
        cycle = filters.Cycle(self, pod)
        reasons: dict[str, list[str]] = {}
        feasible: list[NodeInfo] = []
        for node in self.nodes:
            why = cycle.filter(node)
            if why:
                reasons[node.name] = why
            else:
                feasible.append(node)
        if not feasible:
            return Placement(None, fit_error(len(self.nodes), reasons.values()))
        if len(feasible) == 1:
            return Placement(feasible[0].name)
        totals = scores.score(cycle, feasible)
        best = max(feasible, key=lambda n: totals[n.name])  # max keeps the first (by name) of equals
        return Placement(best.name, scores=tuple((n.name, totals[n.name]) for n in feasible))

    def bind(self, pod: PodInfo) -> Placement:
        """place() and, when a node fits, add() the pod bound to it."""
        placement = self.place(pod)
        if placement.node is not None:
            self.add(replace(pod, node=placement.node))
        return placement


def fit_error(total: int, reasons: Iterable[Sequence[str]]) -> str:
    """Kubernetes' FitError: each reason counted over the nodes, the "N reason" strings sorted."""
    histogram: Counter[str] = Counter()
    for why in reasons:
        histogram.update(why)
    detail = sorted(f"{count} {reason}" for reason, count in histogram.items())
    message = f"0/{total} nodes are available:"
    return f"{message} {', '.join(detail)}." if detail else message


def _bump(table: dict, index: LabelIndex, key: Hashable, match: Match, node: str, sign: int) -> None:
    counter = table.get(key)
    if counter is None:
        counter = table[key] = Counter()
        index.add(key, match)
    counter[node] += sign
    if counter[node] <= 0:
        del counter[node]
        if not counter:
            del table[key]
            index.discard(key, match)


_SPEC_PARTS: dict[int, tuple[PodSpec, tuple[int, int], tuple[int, int], tuple[HostPort, ...]]] = {}


def _spec_parts(pod: PodInfo) -> tuple[tuple[int, int], tuple[int, int], tuple[HostPort, ...]]:
    """A spec's requests and host ports, kept for the specs seen last (pods of one template share theirs)."""
    cached = _SPEC_PARTS.get(id(pod.spec))
    if cached is not None and cached[0] is pod.spec:
        return cached[1], cached[2], cached[3]
    parts = (requests(pod.spec), nonzero_requests(pod.spec), host_ports(pod))
    if len(_SPEC_PARTS) >= 4096:
        _SPEC_PARTS.clear()
    _SPEC_PARTS[id(pod.spec)] = (pod.spec, *parts)
    return parts


def _entry(pod: PodInfo) -> _Entry:
    scheduling = pod.spec.scheduling
    cpu_memory, nonzero, ports = _spec_parts(pod)
    affinity, anti = scheduling.pod_affinity, scheduling.pod_anti_affinity
    if not (affinity.required or affinity.preferred or anti.required or anti.preferred):
        return _Entry(pod, cpu_memory, nonzero, ports, (), ())
    soft = [(resolve_term(t, pod), HARD_POD_AFFINITY_WEIGHT) for t in affinity.required]
    soft += [(resolve_term(w.term, pod), w.weight) for w in affinity.preferred]
    soft += [(resolve_term(w.term, pod), -w.weight) for w in anti.preferred]
    return _Entry(pod, cpu_memory, nonzero, ports, tuple(resolve_term(t, pod) for t in anti.required), tuple(soft))

"""The filters, in the order of Kubernetes' default profile; a node failing one gets that plugin's reasons
(Kubernetes' words) and no later filter runs on it. `Cycle` holds what one pod's filters and scores share
(Kubernetes' PreFilter state), computed once per pod."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

from meshd.external.hostports import UNSCHEDULABLE as PORTS_TAKEN
from meshd.external.hostports import collides
from meshd.model.scheduling import Toleration
from meshd.scheduler.model import (
    UNSCHEDULABLE,
    NodeInfo,
    PodInfo,
    Taint,
    host_ports,
    nonzero_requests,
    requests,
)
from meshd.scheduler.terms import Constraint, Term, constraints, resolve_term

if TYPE_CHECKING:
    from meshd.scheduler.state import Scheduler

NODE_UNSCHEDULABLE = "node(s) were unschedulable"
NODE_NAME = "node(s) didn't match the requested node name"
VOLUME_NODE_AFFINITY = "node(s) had volume node affinity conflict"
NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
TOPOLOGY_SPREAD = "node(s) didn't match pod topology spread constraints"
TOPOLOGY_LABEL = TOPOLOGY_SPREAD + " (missing required label)"
POD_AFFINITY = "node(s) didn't match pod affinity rules"
POD_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
TOO_MANY_PODS = "Too many pods"


def untolerated_reason(taint: Taint) -> str:
    return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"


def tolerated(tolerations: Sequence[Toleration], taint: Taint) -> bool:
    return any(t.tolerates(taint.key, taint.value, taint.effect) for t in tolerations)


def untolerated(taints: Sequence[Taint], tolerations: Sequence[Toleration]) -> Taint | None:
    """The first NoSchedule or NoExecute taint no toleration tolerates (TaintToleration's filter)."""
    for taint in taints:
        if taint.effect in ("NoSchedule", "NoExecute") and not tolerated(tolerations, taint):
            return taint
    return None


class Cycle:
    """One pod's scheduling cycle against the scheduler's state."""

    def __init__(self, state: Scheduler, pod: PodInfo) -> None:
        self.state = state
        self.pod = pod
        self.scheduling = pod.spec.scheduling
        self.tolerations = self.scheduling.tolerations
        self.requests = requests(pod.spec)
        self.nonzero = nonzero_requests(pod.spec)
        self.host_ports = host_ports(pod)

    def filter(self, node: NodeInfo) -> list[str]:
        """Why `node` cannot take the pod (empty: it can)."""
        for check in (self.unschedulable, self.node_name, self.taints, self.node_affinity, self.volume_binding,
                      self.node_ports, self.resources, self.topology_spread, self.inter_pod_affinity):
            why = check(node)
            if why:
                return why
        return []

    # --- NodeUnschedulable, NodeName, TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit ------------

    def unschedulable(self, node: NodeInfo) -> list[str]:
        if node.unschedulable and not tolerated(self.tolerations, Taint(UNSCHEDULABLE, "", "NoSchedule")):
            return [NODE_UNSCHEDULABLE]
        return []

    def node_name(self, node: NodeInfo) -> list[str]:
        wanted = self.scheduling.node_name
        return [NODE_NAME] if wanted and wanted != node.name else []

    def taints(self, node: NodeInfo) -> list[str]:
        taint = untolerated(self.state.taints[node.name], self.tolerations)
        return [untolerated_reason(taint)] if taint else []

    def matches_node(self, node: NodeInfo) -> bool:
        return self.scheduling.matches_node(node.name, self.state.labels[node.name])

    def node_affinity(self, node: NodeInfo) -> list[str]:
        return [] if self.matches_node(node) else [NODE_AFFINITY]

    def volume_binding(self, node: NodeInfo) -> list[str]:
        """VolumeBinding: a pod whose bound volumes live on some nodes (local volumes) fits only those."""
        allowed = self.pod.volume_nodes
        return [VOLUME_NODE_AFFINITY] if allowed is not None and node.name not in allowed else []

    def node_ports(self, node: NodeInfo) -> list[str]:
        if self.host_ports and collides(self.host_ports, self.state.ports[node.name]):
            return [PORTS_TAKEN]
        return []

    def resources(self, node: NodeInfo) -> list[str]:
        usage, (cpu, memory) = self.state.usage[node.name], self.requests
        why = []
        if usage.pods + 1 > node.pods:
            why.append(TOO_MANY_PODS)
        if cpu and node.cpu_millicores and cpu > node.cpu_millicores - usage.cpu:
            why.append("Insufficient cpu")
        if memory and node.memory_bytes and memory > node.memory_bytes - usage.memory:
            why.append("Insufficient memory")
        return why

    # --- PodTopologySpread (DoNotSchedule) -------------------------------------------------------------

    @cached_property
    def hard_constraints(self) -> tuple[Constraint, ...]:
        return constraints(self.pod, "DoNotSchedule")

    def counts_in_domains(self, cons: Sequence[Constraint], nodes: Sequence[NodeInfo],
                          ) -> list[dict[str, int]]:
        """For each constraint, the matching pods in each topology domain of the nodes it counts: nodes with
        every constraint's topology key that pass its nodeAffinityPolicy and nodeTaintsPolicy."""
        keys = {c.topology_key for c in cons}
        domains: list[dict[str, int]] = [{} for _ in cons]
        for node in nodes:
            labels = self.state.labels[node.name]
            if not all(k in labels for k in keys):
                continue
            for i, c in enumerate(cons):
                if c.honor_affinity and not self.matches_node(node):
                    continue
                if c.honor_taints and untolerated(self.state.taints[node.name], self.tolerations):
                    continue
                value = labels[c.topology_key]
                domains[i][value] = domains[i].get(value, 0) + self.state.count(c.match)[node.name]
        return domains

    @cached_property
    def _spread(self) -> tuple[list[dict[str, int]], list[float]]:
        domains = self.counts_in_domains(self.hard_constraints, self.state.nodes)
        minima: list[float] = []
        for c, counts in zip(self.hard_constraints, domains):
            if c.min_domains is not None and len(counts) < c.min_domains:
                minima.append(0)
            else:
                minima.append(min(counts.values()) if counts else float("inf"))
        return domains, minima

    def topology_spread(self, node: NodeInfo) -> list[str]:
        if not self.hard_constraints:
            return []
        domains, minima = self._spread
        labels = self.state.labels[node.name]
        for c, counts, least in zip(self.hard_constraints, domains, minima):
            value = labels.get(c.topology_key)
            if value is None:
                return [TOPOLOGY_LABEL]
            own = 1 if c.match.matches(self.pod.namespace, self.pod.labels) else 0
            if counts.get(value, 0) + own - least > c.max_skew:
                return [TOPOLOGY_SPREAD]
        return []

    # --- InterPodAffinity (required) ----------------------------------------------------------------------

    @cached_property
    def required_affinity(self) -> tuple[Term, ...]:
        return tuple(resolve_term(t, self.pod) for t in self.scheduling.pod_affinity.required)

    @cached_property
    def required_anti_affinity(self) -> tuple[Term, ...]:
        return tuple(resolve_term(t, self.pod) for t in self.scheduling.pod_anti_affinity.required)

    def _pairs(self, counts: Mapping[str, int], keys: Sequence[str]) -> Counter[tuple[str, str]]:
        pairs: Counter[tuple[str, str]] = Counter()
        for node, n in counts.items():
            labels = self.state.labels.get(node)
            if n > 0 and labels is not None:
                for key in keys:
                    if key in labels:
                        pairs[(key, labels[key])] += n
        return pairs

    @cached_property
    def _affinity_pairs(self) -> Counter[tuple[str, str]]:
        """Topology pairs of the pods matching all of the pod's required affinity terms."""
        terms = self.required_affinity
        return self._pairs(self.state.count(*(t.match for t in terms)), [t.topology_key for t in terms])

    @cached_property
    def _anti_pairs(self) -> Counter[tuple[str, str]]:
        pairs: Counter[tuple[str, str]] = Counter()
        for t in self.required_anti_affinity:
            pairs.update(self._pairs(self.state.count(t.match), [t.topology_key]))
        return pairs

    @cached_property
    def _existing_anti_pairs(self) -> set[tuple[str, str]]:
        """Topology pairs where a placed pod's required anti-affinity repels this pod."""
        out: set[tuple[str, str]] = set()
        for term in self.state.anti_index.candidates(self.pod.labels):
            if term.match.matches(self.pod.namespace, self.pod.labels):
                out.update(self._pairs(self.state.anti[term], [term.topology_key]))
        return out

    def inter_pod_affinity(self, node: NodeInfo) -> list[str]:
        labels = self.state.labels[node.name]
        if self.required_affinity:
            exist = True
            for t in self.required_affinity:
                if t.topology_key not in labels:
                    return [POD_AFFINITY]
                if self._affinity_pairs[(t.topology_key, labels[t.topology_key])] <= 0:
                    exist = False
            # the first pod of a group with affinity to itself may go anywhere its topology keys exist
            if not exist and (self._affinity_pairs or not all(
                    t.match.matches(self.pod.namespace, self.pod.labels) for t in self.required_affinity)):
                return [POD_AFFINITY]
        if self._anti_pairs:
            for t in self.required_anti_affinity:
                value = labels.get(t.topology_key)
                if value is not None and self._anti_pairs[(t.topology_key, value)] > 0:
                    return [POD_ANTI_AFFINITY]
        if self._existing_anti_pairs and any(pair in self._existing_anti_pairs for pair in labels.items()):
            return [EXISTING_ANTI_AFFINITY]
        return []

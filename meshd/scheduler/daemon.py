"""A DaemonSet's pods, as Kubernetes' DaemonSet controller makes them: which nodes should run one (node name,
node affinity and nodeSelector, taints), and each pod's spec pinned to its node (required node affinity on
`metadata.name`, replacing the template's) with the tolerations every daemon pod gets; then placed through
the scheduler like any pod."""

from __future__ import annotations

from dataclasses import replace

from meshd.model.objects import PodSpec
from meshd.model.scheduling import NodeAffinity, NodeSelectorTerm, Requirement, Scheduling, Toleration
from meshd.scheduler.filters import untolerated
from meshd.scheduler.model import NOT_READY, UNREACHABLE, UNSCHEDULABLE, NodeInfo

DAEMON_TOLERATIONS = (
    Toleration(NOT_READY, "Exists", effect="NoExecute"),
    Toleration(UNREACHABLE, "Exists", effect="NoExecute"),
    Toleration("node.kubernetes.io/disk-pressure", "Exists", effect="NoSchedule"),
    Toleration("node.kubernetes.io/memory-pressure", "Exists", effect="NoSchedule"),
    Toleration("node.kubernetes.io/pid-pressure", "Exists", effect="NoSchedule"),
    Toleration(UNSCHEDULABLE, "Exists", effect="NoSchedule"),
)
HOST_NETWORK_TOLERATION = Toleration("node.kubernetes.io/network-unavailable", "Exists", effect="NoSchedule")


def daemon_tolerations(spec: PodSpec) -> tuple[Toleration, ...]:
    """The template's tolerations plus the ones the DaemonSet controller adds (those it has already stay)."""
    extra = DAEMON_TOLERATIONS + ((HOST_NETWORK_TOLERATION,) if spec.host_network else ())
    have = spec.scheduling.tolerations
    return have + tuple(t for t in extra if not any((h.key, h.effect) == (t.key, t.effect) for h in have))


def should_run(spec: PodSpec, node: NodeInfo) -> tuple[bool, bool]:
    """(should a daemon pod run on `node`, may one already there keep running), as the DaemonSet controller's
    nodeShouldRunDaemonPod answers: nodeName and node affinity must match; a taint not tolerated stops new
    pods, and a NoExecute one stops running pods too."""
    scheduling = spec.scheduling
    if scheduling.node_name and scheduling.node_name != node.name:
        return False, False
    if not scheduling.matches_node(node.name, node.effective_labels()):
        return False, False
    tolerations = daemon_tolerations(spec)
    taints = node.effective_taints()
    if untolerated(taints, tolerations) is not None:
        keeps = untolerated([t for t in taints if t.effect == "NoExecute"], tolerations) is None
        return False, keeps
    return True, True


def daemon_pod_spec(spec: PodSpec, node: str) -> PodSpec:
    """The spec of the daemon pod for `node`: required node affinity `metadata.name In [node]` (replacing the
    template's required terms, which chose the node already) and the daemon tolerations."""
    scheduling = spec.scheduling
    pin = (NodeSelectorTerm(match_fields=(Requirement("metadata.name", "In", (node,)),)),)
    preferred = scheduling.node_affinity.preferred if scheduling.node_affinity else ()
    pinned: Scheduling = replace(scheduling, node_affinity=NodeAffinity(required=pin, preferred=preferred),
                                 tolerations=daemon_tolerations(spec))
    return replace(spec, scheduling=pinned)

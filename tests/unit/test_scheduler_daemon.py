"""DaemonSet pods: which nodes run one, and each pod pinned to its node through the scheduler."""

from __future__ import annotations

from dataclasses import replace

from meshd.scheduler import Scheduler, Taint
from meshd.scheduler.daemon import daemon_pod_spec, should_run
from tests.scheduler.helpers import node, pod

CONTROL_PLANE = Taint("node-role.kubernetes.io/control-plane", "", "NoSchedule")
GPU_ONLY = Taint("gpu", "yes", "NoExecute")
NODES = [node("a", taints=(CONTROL_PLANE,)), node("b", unschedulable=True), node("c", ready=False),
         node("d", taints=(GPU_ONLY,)), node("e", labels={"disk": "hdd"})]


def test_which_nodes_run_a_daemon_pod() -> None:
    agent = pod("agent", {"name": "log"},
                tolerations=[{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                              "effect": "NoSchedule"}])
    answers = {n.name: should_run(agent.spec, n) for n in NODES}
    # cordoned nodes still run daemons; a NotReady one gets no new pod but keeps its own; NoExecute evicts
    assert answers == {"a": (True, True), "b": (True, True), "c": (False, True), "d": (False, False),
                       "e": (True, True)}
    picky = pod("agent", nodeSelector={"disk": "ssd"})
    assert should_run(picky.spec, NODES[4]) == (False, False)


def test_each_daemon_pod_lands_on_its_node() -> None:
    template = pod("agent", {"name": "log"}, affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "DoesNotExist"}]}]}}})
    state = Scheduler(NODES)
    for n in NODES:
        if should_run(template.spec, n)[0]:
            daemon = replace(template, name=f"agent-{n.name}", spec=daemon_pod_spec(template.spec, n.name))
            assert state.bind(daemon).node == n.name
    assert sorted(p.node for p in state.pods()) == ["b", "e"]  # a's taint is not tolerated by this one

"""The scheduler's filters, one table per plugin: which node a pod lands on, or Kubernetes' message for why none."""

from __future__ import annotations

import pytest

from meshd.scheduler import NodeInfo, PodInfo, Taint, fit_error, local_placement, schedule
from meshd.scheduler.local import local_node
from tests.scheduler.helpers import anti, node, pod, spread

A, B, C = node("a"), node("b"), node("c")
Case = tuple[PodInfo, list[NodeInfo], list[PodInfo], str]


def check(case: Case) -> None:
    incoming, nodes, placed, expected = case
    placement = schedule(incoming, nodes, placed)
    if expected.startswith("0/") or expected.startswith("no nodes"):
        assert placement.node is None
        assert placement.message == expected
    else:
        assert placement.node == expected, placement


UNSCHEDULABLE: list[Case] = [
    (pod("p"), [node("a", unschedulable=True), B], [], "b"),
    (pod("p"), [node("a", unschedulable=True)], [], "0/1 nodes are available: 1 node(s) were unschedulable."),
    (pod("p", tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                            "effect": "NoSchedule"}]), [node("a", unschedulable=True)], [], "a"),
    (pod("p"), [], [], "no nodes available to schedule pods"),
]

NODE_NAME: list[Case] = [
    (pod("p", nodeName="b"), [A, B, C], [], "b"),
    (pod("p", nodeName="z"), [A, B], [], "0/2 nodes are available: 2 node(s) didn't match the requested node name."),
]

GPU = Taint("dedicated", "gpu", "NoSchedule")
TAINTS: list[Case] = [
    (pod("p"), [node("a", taints=(GPU,)), B], [], "b"),
    (pod("p"), [node("a", taints=(GPU,))], [], "0/1 nodes are available: 1 node(s) had untolerated taint "
                                               "{dedicated: gpu}."),
    (pod("p"), [node("a", taints=(Taint("k", "", "NoExecute"),))], [],
     "0/1 nodes are available: 1 node(s) had untolerated taint {k: }."),
    (pod("p"), [node("a", taints=(Taint("k", "v", "PreferNoSchedule"),))], [], "a"),  # a preference only
    (pod("p", tolerations=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
     [node("a", taints=(GPU,))], [], "a"),
    (pod("p", tolerations=[{"key": "dedicated", "value": "cpu"}]), [node("a", taints=(GPU,))], [],
     "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}."),
    (pod("p", tolerations=[{"key": "dedicated", "operator": "Exists"}]), [node("a", taints=(GPU,))], [], "a"),
    (pod("p", tolerations=[{"operator": "Exists"}]), [node("a", taints=(GPU,))], [], "a"),
    (pod("p", tolerations=[{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]),
     [node("a", taints=(GPU,))], [], "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}."),
    # a NotReady node (its lease expired) carries node.kubernetes.io/unreachable: only a toleration lets a pod in
    (pod("p"), [node("a", ready=False), node("b", ready=False)], [],
     "0/2 nodes are available: 2 node(s) had untolerated taint {node.kubernetes.io/unreachable: }."),
    (pod("p"), [node("a", ready=False), B], [], "b"),
    (pod("p", tolerations=[{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}]),
     [node("a", ready=False)], [], "a"),
]

RESOURCES: list[Case] = [
    (pod("p", cpu="3"), [A, B], [pod("q", cpu="2", node="a")], "b"),
    (pod("p", cpu="3"), [A], [pod("q", cpu="2", node="a")], "0/1 nodes are available: 1 Insufficient cpu."),
    (pod("p", cpu="5", memory="9Gi"), [A], [], "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."),
    (pod("p", memory="5Gi"), [A, B], [pod("q", memory="4Gi", node="a"), pod("r", memory="4Gi", node="b")],
     "0/2 nodes are available: 2 Insufficient memory."),
    (pod("p"), [node("a", pods=1)], [pod("q", node="a")], "0/1 nodes are available: 1 Too many pods."),
    (pod("p", cpu="4"), [A], [], "a"),  # exactly the allocatable
    (pod("p", cpu="64"), [NodeInfo("a")], [], "a"),  # allocatable unknown: no limit
]

NODE_AFFINITY_MSG = "node(s) didn't match Pod's node affinity/selector"


def required(*expressions: dict, fields: tuple[dict, ...] = ()) -> dict:
    term: dict = {"matchExpressions": list(expressions)} if expressions else {}
    if fields:
        term["matchFields"] = list(fields)
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


SSD = node("a", labels={"disk": "ssd", "cores": "8"})
HDD = node("b", labels={"disk": "hdd", "cores": "2"})
NODE_AFFINITY: list[Case] = [
    (pod("p", nodeSelector={"disk": "ssd"}), [HDD, SSD], [], "a"),
    (pod("p", nodeSelector={"disk": "nvme"}), [HDD, SSD], [], f"0/2 nodes are available: 2 {NODE_AFFINITY_MSG}."),
    (pod("p", affinity=required({"key": "disk", "operator": "In", "values": ["ssd", "nvme"]})), [HDD, SSD], [], "a"),
    (pod("p", affinity=required({"key": "disk", "operator": "NotIn", "values": ["ssd"]})), [SSD, HDD], [], "b"),
    (pod("p", affinity=required({"key": "gpu", "operator": "Exists"})), [SSD, HDD], [],
     f"0/2 nodes are available: 2 {NODE_AFFINITY_MSG}."),
    (pod("p", affinity=required({"key": "gpu", "operator": "DoesNotExist"})), [SSD], [], "a"),
    (pod("p", affinity=required({"key": "cores", "operator": "Gt", "values": ["4"]})), [HDD, SSD], [], "a"),
    (pod("p", affinity=required({"key": "cores", "operator": "Lt", "values": ["4"]})), [SSD, HDD], [], "b"),
    (pod("p", affinity=required(fields=({"key": "metadata.name", "operator": "In", "values": ["b"]},))),
     [SSD, HDD], [], "b"),
    # nodeSelector and affinity both hold
    (pod("p", nodeSelector={"disk": "hdd"}, affinity=required({"key": "cores", "operator": "Gt", "values": ["4"]})),
     [SSD, HDD], [], f"0/2 nodes are available: 2 {NODE_AFFINITY_MSG}."),
    # terms are ORed
    (pod("p", affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["nvme"]}]},
        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd"]}]}]}}}), [SSD, HDD], [], "b"),
]

PORTS: list[Case] = [
    (pod("p", host_port=8080), [A, B], [pod("q", host_port=8080, node="a")], "b"),
    (pod("p", host_port=8080), [A], [pod("q", host_port=8080, node="a")],
     "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."),
    (pod("p", host_port=8081), [A], [pod("q", host_port=8080, node="a")], "a"),
]

WEB = {"app": "web"}
CACHE = {"app": "cache"}
AFFINITY_TO_CACHE = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
    {"labelSelector": {"matchLabels": CACHE}, "topologyKey": "kubernetes.io/hostname"}]}}
INTER_POD: list[Case] = [
    # required affinity: next to a cache pod
    (pod("p", WEB, affinity=AFFINITY_TO_CACHE), [A, B, C], [pod("c1", CACHE, node="b")], "b"),
    (pod("p", WEB, affinity=AFFINITY_TO_CACHE), [A, B], [],
     "0/2 nodes are available: 2 node(s) didn't match pod affinity rules."),
    # ... unless it is the first of a group with affinity to itself
    (pod("p", CACHE, affinity=AFFINITY_TO_CACHE), [A, B], [], "a"),
    # required anti-affinity
    (pod("p", WEB, affinity=anti("web")), [A, B], [pod("w1", WEB, node="a")], "b"),
    (pod("p", WEB, affinity=anti("web")), [A, B], [pod("w1", WEB, node="a"), pod("w2", WEB, node="b")],
     "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules."),
    # another namespace's pods do not count, unless the term names it
    (pod("p", WEB, affinity=anti("web")), [A], [pod("w1", WEB, node="a", namespace="other")], "a"),
    (pod("p", WEB, affinity={"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": WEB}, "topologyKey": "kubernetes.io/hostname",
         "namespaces": ["other"]}]}}), [A], [pod("w1", WEB, node="a", namespace="other")],
     "0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules."),
    # symmetric: a placed pod's anti-affinity repels the newcomer it matches
    (pod("p", WEB), [A, B], [pod("x", {"app": "x"}, node="a", affinity=anti("web"))], "b"),
    (pod("p", WEB), [A], [pod("x", {"app": "x"}, node="a", affinity=anti("web"))],
     "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules."),
    # zones: anti-affinity over a zone keeps the whole zone out
    (pod("p", WEB, affinity=anti("web", "topology.kubernetes.io/zone")),
     [node("a", zone="z1"), node("b", zone="z1"), node("c", zone="z2")], [pod("w1", WEB, node="a")], "c"),
    # matchExpressions in the label selector
    (pod("p", WEB, affinity={"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]},
         "topologyKey": "kubernetes.io/hostname"}]}}), [A, B], [pod("x", {"app": "api"}, node="a")], "b"),
]

SPREAD_MSG = "node(s) didn't match pod topology spread constraints"
ZONED = [node("a", zone="z1"), node("b", zone="z1"), node("c", zone="z2")]
SPREAD: list[Case] = [
    (pod("p", WEB, topologySpreadConstraints=spread("web")), [A, B], [pod("w1", WEB, node="a")], "b"),
    (pod("p", WEB, topologySpreadConstraints=spread("web")), [A, B],
     [pod("w1", WEB, node="a"), pod("w2", WEB, node="a"), pod("w3", WEB, node="b")], "b"),
    (pod("p", WEB, topologySpreadConstraints=spread("web", "topology.kubernetes.io/zone")), ZONED,
     [pod("w1", WEB, node="a")], "c"),
    (pod("p", WEB, topologySpreadConstraints=spread("web", "topology.kubernetes.io/zone")),
     [node("a", zone="z1"), node("b", zone="z1"), node("c", zone="z2", unschedulable=True)],
     [pod("w1", WEB, node="a")],
     f"0/3 nodes are available: 1 node(s) were unschedulable, 2 {SPREAD_MSG}."),
    # a node without the topology key cannot take the pod
    (pod("p", WEB, topologySpreadConstraints=spread("web", "topology.kubernetes.io/zone")), [A], [],
     f"0/1 nodes are available: 1 {SPREAD_MSG} (missing required label)."),
    # minDomains: fewer domains than asked count the global minimum as 0
    (pod("p", WEB, topologySpreadConstraints=spread("web", "topology.kubernetes.io/zone", minDomains=3)),
     [node("a", zone="z1"), node("b", zone="z2")], [pod("w1", WEB, node="a"), pod("w2", WEB, node="b")],
     f"0/2 nodes are available: 2 {SPREAD_MSG}."),
    # maxSkew 2 allows one more (b, cordoned, still counts as a domain)
    (pod("p", WEB, topologySpreadConstraints=spread("web", skew=2)), [A, node("b", unschedulable=True)],
     [pod("w1", WEB, node="a")], "a"),
    (pod("p", WEB, topologySpreadConstraints=spread("web", skew=1)), [A, node("b", unschedulable=True)],
     [pod("w1", WEB, node="a")], f"0/2 nodes are available: 1 {SPREAD_MSG}, 1 node(s) were unschedulable."),
    # nodeAffinityPolicy Honor: nodes the pod may not use are no domain (b, empty, would hold the minimum at 0)
    (pod("p", WEB, nodeSelector={"disk": "ssd"}, topologySpreadConstraints=spread("web")),
     [node("a", labels={"disk": "ssd"}), B], [pod("w1", WEB, node="a")], "a"),
    (pod("p", WEB, nodeSelector={"disk": "ssd"},
         topologySpreadConstraints=spread("web", nodeAffinityPolicy="Ignore")),
     [node("a", labels={"disk": "ssd"}), B], [pod("w1", WEB, node="a")],
     f"0/2 nodes are available: 1 {NODE_AFFINITY_MSG}, 1 {SPREAD_MSG}."),
]


@pytest.mark.parametrize("case", UNSCHEDULABLE + NODE_NAME)
def test_unschedulable_and_node_name(case: Case) -> None:
    check(case)


@pytest.mark.parametrize("case", TAINTS)
def test_taints_and_tolerations(case: Case) -> None:
    check(case)


@pytest.mark.parametrize("case", RESOURCES)
def test_resources_fit(case: Case) -> None:
    check(case)


@pytest.mark.parametrize("case", NODE_AFFINITY)
def test_node_affinity_and_selector(case: Case) -> None:
    check(case)


@pytest.mark.parametrize("case", PORTS)
def test_host_ports(case: Case) -> None:
    check(case)


@pytest.mark.parametrize("case", INTER_POD)
def test_inter_pod_affinity(case: Case) -> None:
    check(case)


@pytest.mark.parametrize("case", SPREAD)
def test_topology_spread_do_not_schedule(case: Case) -> None:
    check(case)


def test_one_node_one_reason_the_first_failing_filter_gives_it() -> None:
    # a is cordoned and full: only "unschedulable" counts for it, as Kubernetes stops at the first filter
    placed = [pod("q", cpu="4", node="a"), pod("w", WEB, node="b"), pod("v", WEB, node="c", cpu="3500m")]
    message = schedule(pod("p", WEB, cpu="1", affinity=anti("web")),
                       [node("a", unschedulable=True), B, C], placed).message
    assert message == ("0/3 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match pod anti-affinity "
                       "rules, 1 node(s) were unschedulable.")


def test_the_fourth_replica_with_required_anti_affinity_stays_pending() -> None:
    nodes = [A, B, C]
    placed = [pod(f"web-{i}", WEB, node=n, affinity=anti("web")) for i, n in enumerate("abc")]
    placement = schedule(pod("web-3", WEB, affinity=anti("web")), nodes, placed)
    assert placement.node is None
    assert placement.message == "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."


def test_the_message_sorts_the_counted_reasons_as_text() -> None:
    assert fit_error(3, [["Insufficient cpu"], [SPREAD_MSG], [SPREAD_MSG]]) == (
        f"0/3 nodes are available: 1 Insufficient cpu, 2 {SPREAD_MSG}.")
    # Kubernetes sorts "N reason" strings: "10 ..." before "2 ..."
    assert fit_error(12, [["b"]] * 10 + [["a"]] * 2) == "0/12 nodes are available: 10 b, 2 a."


def test_one_node_admission_words_the_message_as_kubernetes() -> None:
    here = local_node("vm", cpu_millicores=1000, memory_bytes=1 << 30, pods=2)
    running = [pod("q", cpu="800m"), pod("r")]
    placement = local_placement(pod("p", cpu="500m"), here, running)
    assert placement.message == "0/1 nodes are available: 1 Insufficient cpu, 1 Too many pods."
    assert local_placement(pod("p", cpu="100m"), here, running[:1]).node == "vm"
    assert local_placement(pod("p", nodeSelector={"kubernetes.io/hostname": "vm"}), here, []).node == "vm"


def test_nodes_as_agents_register_them() -> None:
    from meshd.api.cluster import node as node_object

    objects = [node_object(name, created=0, cpu_millicores=1500, memory_bytes=2 << 30, address="10.0.0.1",
                           runtime="docker://1") for name in ("a", "b")]
    objects[1]["spec"] = {"unschedulable": True, "taints": [{"key": "k", "effect": "NoSchedule"}]}
    a, b = (NodeInfo.from_node(o, ready=name == "a") for o, name in zip(objects, "ab"))
    assert (a.name, a.cpu_millicores, a.memory_bytes, a.pods, a.ready) == ("a", 1500, 2 << 30, 110, True)
    assert (b.unschedulable, b.taints, b.ready) == (True, (Taint("k", "", "NoSchedule"),), False)
    assert a.labels["kubernetes.io/hostname"] == "a"
    assert schedule(pod("p", cpu="1"), [a, b], []).node == "a"
    assert schedule(pod("p", cpu="2"), [a, b], []).message == (
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) were unschedulable.")

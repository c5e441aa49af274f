"""The StatefulSet and DaemonSet decisions (meshd.controller.statefulset, meshd.controller.daemonset), table-tested."""

from __future__ import annotations

import pytest

from meshd.controller.daemonset import DaemonPod, daemonset_counts, plan_daemonset
from meshd.controller.statefulset import (
    OrdinalPod,
    claim_name,
    ordinal_of,
    plan_statefulset,
    statefulset_counts,
)


def P(ordinal: int, rev: str = "r1", *, ready: bool = True, terminating: bool = False) -> OrdinalPod:
    return OrdinalPod(ordinal, rev, ready=ready, available=ready, terminating=terminating)


def plan(replicas, pods, *, parallel=False, on_delete=False, partition=0, current="r1", update="r1"):
    result = plan_statefulset(replicas=replicas, pods=pods, parallel=parallel, on_delete=on_delete,
                              partition=partition, current_revision=current, update_revision=update)
    return result.create, result.delete


@pytest.mark.parametrize(("replicas", "pods", "parallel", "expected"), [
    # OrderedReady: one at a time, each Running and Ready before the next
    (3, [], False, (((0, "r1"),), ())),
    (3, [P(0, ready=False)], False, ((), ())),
    (3, [P(0)], False, (((1, "r1"),), ())),
    (3, [P(0), P(2)], False, (((1, "r1"),), ())),
    (3, [P(0), P(1), P(2)], False, ((), ())),
    # a pod being deleted is not recreated before it is gone
    (3, [P(0), P(1, terminating=True), P(2)], False, ((), ())),
    # Parallel: all at once
    (3, [], True, (((0, "r1"), (1, "r1"), (2, "r1")), ())),
    (3, [P(0, ready=False), P(1, terminating=True)], True, (((2, "r1"),), ())),
    # scale down: highest first, one at a time, only while the lower pods are ready
    (1, [P(0), P(1), P(2)], False, ((), (2,))),
    (1, [P(0), P(1), P(2, terminating=True)], False, ((), ())),
    (1, [P(0), P(1)], False, ((), (1,))),
    (2, [P(0), P(1, ready=False), P(2)], False, ((), ())),
    (0, [P(0), P(1), P(2)], True, ((), (2, 1, 0))),
])
def test_scaling(replicas, pods, parallel, expected):
    assert plan(replicas, pods, parallel=parallel) == expected


@pytest.mark.parametrize(("pods", "partition", "on_delete", "expected"), [
    # reverse ordinal order, one at a time
    ([P(0), P(1), P(2)], 0, False, ((), (2,))),
    ([P(0), P(1), P(2, terminating=True)], 0, False, ((), ())),
    ([P(0), P(1), P(2, "r2", ready=False)], 0, False, ((), ())),
    ([P(0), P(1), P(2, "r2")], 0, False, ((), (1,))),
    ([P(0, "r2"), P(1, "r2"), P(2, "r2")], 0, False, ((), ())),
    # partition: ordinals below it keep the current revision
    ([P(0), P(1), P(2, "r2")], 2, False, ((), ())),
    ([P(0), P(1)], 1, False, (((2, "r2"),), ())),
    ([P(1)], 1, False, (((0, "r1"),), ())),
    # OnDelete: nothing is deleted; a deleted pod comes back at the update revision
    ([P(0), P(1), P(2)], 0, True, ((), ())),
    ([P(0), P(2)], 0, True, (((1, "r2"),), ())),
])
def test_rolling_update(pods, partition, on_delete, expected):
    assert plan(3, pods, partition=partition, on_delete=on_delete, update="r2") == expected


def test_counts_and_current_revision():
    counts = statefulset_counts(replicas=3, pods=[P(0), P(1, "r2"), P(2, "r2", ready=False)],
                                current_revision="r1", update_revision="r2")
    assert (counts.replicas, counts.ready, counts.current, counts.updated) == (3, 2, 1, 2)
    assert counts.current_revision == "r1"
    done = statefulset_counts(replicas=2, pods=[P(0, "r2"), P(1, "r2"), P(2, terminating=True)],
                              current_revision="r1", update_revision="r2")
    assert (done.replicas, done.current, done.updated, done.current_revision) == (2, 2, 2, "r2")


def test_names():
    assert ordinal_of("web", "web-12") == 12
    assert ordinal_of("web", "web-01") is None
    assert ordinal_of("web", "web-x") is None
    assert ordinal_of("web", "webby-1") is None
    assert claim_name("www", "web", 2) == "www-web-2"


def D(name, rev="r1", created=0.0, *, available=True, terminating=False):
    return DaemonPod(name, rev, created, available=available, ready=available, terminating=terminating)


def ds(pods, *, on_delete=False, unavailable=1, surge=0, nodes=("n1",)):
    result = plan_daemonset(nodes=nodes, pods=pods, update_revision="r2", on_delete=on_delete,
                            max_unavailable=unavailable, max_surge=surge)
    return result.create, result.delete


@pytest.mark.parametrize(("pods", "kwargs", "expected"), [
    ({}, {}, (("n1",), ())),
    ({"n1": [D("a", "r2")]}, {}, ((), ())),
    # duplicates: the newest at the update revision stays
    ({"n1": [D("a", "r2", 1), D("b", "r2", 2)]}, {}, ((), ("a",))),
    # rolling update with maxUnavailable 1: the old pod goes, then a new one comes once it is gone
    ({"n1": [D("a")]}, {}, ((), ("a",))),
    ({"n1": [D("a", terminating=True)]}, {}, ((), ())),
    ({"n1": [D("a", terminating=True)], "n2": [D("b")]}, {"nodes": ("n1", "n2")}, ((), ())),
    ({"n1": [D("a", "r2")], "n2": [D("b")]}, {"nodes": ("n1", "n2")}, ((), ("b",))),
    ({"n1": [D("a")], "n2": [D("b")]}, {"nodes": ("n1", "n2"), "unavailable": 2}, ((), ("a", "b"))),
    # maxSurge: the new pod starts beside the old one, which goes once the new one is available
    ({"n1": [D("a")]}, {"surge": 1, "unavailable": 0}, (("n1",), ())),
    ({"n1": [D("a"), D("b", "r2", 1, available=False)]}, {"surge": 1, "unavailable": 0}, ((), ())),
    ({"n1": [D("a"), D("b", "r2", 1)]}, {"surge": 1, "unavailable": 0}, ((), ("a",))),
    # OnDelete: old pods stay
    ({"n1": [D("a")]}, {"on_delete": True}, ((), ())),
])
def test_daemonset(pods, kwargs, expected):
    assert ds(pods, **kwargs) == expected


def test_daemonset_counts():
    counts = daemonset_counts(nodes=["n1"], pods={"n1": [D("a", "r2", available=False)]}, update_revision="r2")
    assert (counts.desired, counts.current, counts.ready, counts.updated, counts.available,
            counts.unavailable) == (1, 1, 0, 1, 0, 1)


@pytest.mark.parametrize(("change", "problem"), [
    ("spec: {replicas: -1}", "spec.replicas: must be greater than or equal to 0"),
    ("podManagementPolicy: Sometimes", 'spec.podManagementPolicy: unsupported value "Sometimes"'),
    ("updateStrategy: {type: OnDelete, rollingUpdate: {partition: 1}}",
     "spec.updateStrategy.rollingUpdate: only allowed for updateStrategy 'RollingUpdate'"),
    ("updateStrategy: {rollingUpdate: {partition: -1}}", "spec.updateStrategy.rollingUpdate.partition: must be"),
    ("persistentVolumeClaimRetentionPolicy: {whenScaled: Delete}",
     "spec.persistentVolumeClaimRetentionPolicy.whenScaled: unsupported value \"Delete\""),
    ("ordinals: {start: 1}", "spec.ordinals: not supported"),
    ("volumeClaimTemplates: [{metadata: {name: www}, spec: {accessModes: [ReadWriteOnce]}}]",
     "spec.volumeClaimTemplates[0].spec.resources: required field is missing"),
])
def test_statefulset_manifests_are_refused_with_the_field_path(change, problem):
    from meshd.manifests import ManifestError, load_documents

    base = """apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: nginx
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: busybox}]}
"""
    text = base.replace("spec:\n  serviceName", "spec:\n  replicas: -1\n  serviceName") if change.startswith(
        "spec:") else base + "  " + change + "\n"
    with pytest.raises(ManifestError) as caught:
        load_documents(text)
    assert problem in str(caught.value)


def test_a_claim_template_is_a_volume_of_each_pod():
    from meshd.manifests import load_documents

    text = """apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: busybox, volumeMounts: [{name: www, mountPath: /www}]}]}
  volumeClaimTemplates:
  - metadata: {name: www}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"""
    (sts,) = load_documents(text).objects
    assert [v.name for v in sts.template.spec.volumes] == ["www"]
    assert sts.volume_claim_templates[0]["metadata"]["name"] == "www"

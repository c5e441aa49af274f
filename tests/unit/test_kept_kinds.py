"""The kinds meshd keeps without acting on them (meshd.model.kept): loaded as given with a warning that says what
meshd does not do, refused by name where their shape is wrong; decoded from the protobuf bodies the real kubectl
sends for `kubectl create sa|clusterrole|clusterrolebinding|quota|pdb|priorityclass` and `kubectl autoscale`
(captured from kubectl v1.37 with -v=9); shown with kubectl's columns."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from meshd.api import columns, protobuf
from meshd.api.kinds import KINDS, resolve_kind
from meshd.manifests import ManifestError, load_documents
from meshd.model.kept import KEPT
from meshd.model.objects import KeptObject


def test_a_role_loads_as_given_with_a_warning_and_its_rules_compare() -> None:
    text = ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: 'system:aggregate-to-x',"
            " namespace: ignored}\nrules: [{apiGroups: [''], resources: [pods], verbs: [get]}]\n")
    loaded = load_documents(text, source="r.yaml")
    (role,) = loaded.objects
    assert isinstance(role, KeptObject) and role.metadata.namespace == ""  # cluster-scoped
    assert role.content == {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    assert loaded.warnings == ("r.yaml: document 1 (ClusterRole system:aggregate-to-x): kept, not acted on: meshd "
                               "does not authorize by RBAC: whoever holds the agent's token may do everything (its "
                               "objects are kept for the manifests that carry them)",)
    (other,) = load_documents(text.replace("[get]", "[list]")).objects
    assert other != role  # an apply that changes only the rules changes the object


@pytest.mark.parametrize(("text", "words"), [
    ("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\nspec: {}\n", "spec: unknown field"),
    ("apiVersion: rbac/v1\nkind: Role\nmetadata: {name: a}\n", '"rbac/v1" is not supported for Role'),
    ("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: 'a:b'}\n", "metadata.name"),
    ("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: 'a/b'}\n", "may not contain '/'"),
    ("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: a}\nrules: get\n",
     "rules: expected a list"),
    ("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: a}\nrules: [get]\n",
     "rules[0]: expected a mapping"),
    ("apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: a}\nsubjects: []\n",
     "roleRef: required field is missing"),
    ("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\nautomountServiceAccountToken: 'no'\n",
     "automountServiceAccountToken: expected true or false"),
    ("apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: a}\ndescription: x\n",
     "value: required field is missing"),
    ("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a}\nspec: [x]\n",
     "spec: expected a mapping"),
])
def test_a_kept_object_of_the_wrong_shape_is_refused_by_name(text: str, words: str) -> None:
    with pytest.raises(ManifestError) as caught:
        load_documents(text)
    assert words in str(caught.value)


def test_every_kept_kind_is_served_and_found_by_its_names() -> None:
    for kept in KEPT:
        kind = next(k for k in KINDS if k.kind == kept.kind)
        assert kind.api_version == kept.api_version and kind.namespaced == kept.namespaced
        assert "create" in kind.verbs and "patch" in kind.verbs
        assert resolve_kind(kept.plural) == kind and resolve_kind(kept.kind) == kind
        for short in kept.short_names:
            assert resolve_kind(short) == kind
    assert resolve_kind("roles.rbac.authorization.k8s.io").kind == "Role"
    assert resolve_kind("hpa").kind == "HorizontalPodAutoscaler"


def _hex(dump: str) -> bytes:
    return bytes.fromhex("".join(dump.split()))


# kubectl create clusterrole reader --verb=get,list --resource=pods,deployments.apps --resource-name=x
CLUSTERROLE = _hex("""6b 38 73 00 0a 2b 0a 1c 72 62 61 63 2e 61 75 74 68 6f 72 69 7a 61 74 69 6f 6e 2e 6b 38 73 2e 69
6f 2f 76 31 12 0b 43 6c 75 73 74 65 72 52 6f 6c 65 12 53 0a 16 0a 06 72 65 61 64 65 72 12 00 1a 00 22 00 2a 00 32 00
38 00 42 00 12 16 0a 03 67 65 74 0a 04 6c 69 73 74 12 00 1a 04 70 6f 64 73 22 01 78 12 21 0a 03 67 65 74 0a 04 6c 69
73 74 12 04 61 70 70 73 1a 0b 64 65 70 6c 6f 79 6d 65 6e 74 73 22 01 78 1a 00 22 00""")
# kubectl create clusterrolebinding rb --clusterrole=reader --user=jane --serviceaccount=default:robot2 --group=g
BINDING = _hex("""6b 38 73 00 0a 32 0a 1c 72 62 61 63 2e 61 75 74 68 6f 72 69 7a 61 74 69 6f 6e 2e 6b 38 73 2e 69 6f
2f 76 31 12 12 43 6c 75 73 74 65 72 52 6f 6c 65 42 69 6e 64 69 6e 67 12 bf 01 0a 12 0a 02 72 62 12 00 1a 00 22 00 2a
00 32 00 38 00 42 00 12 29 0a 04 55 73 65 72 12 19 72 62 61 63 2e 61 75 74 68 6f 72 69 7a 61 74 69 6f 6e 2e 6b 38 73
2e 69 6f 1a 04 6a 61 6e 65 22 00 12 27 0a 05 47 72 6f 75 70 12 19 72 62 61 63 2e 61 75 74 68 6f 72 69 7a 61 74 69 6f
6e 2e 6b 38 73 2e 69 6f 1a 01 67 22 00 12 23 0a 0e 53 65 72 76 69 63 65 41 63 63 6f 75 6e 74 12 00 1a 06 72 6f 62 6f
74 32 22 07 64 65 66 61 75 6c 74 1a 30 0a 19 72 62 61 63 2e 61 75 74 68 6f 72 69 7a 61 74 69 6f 6e 2e 6b 38 73 2e 69
6f 12 0b 43 6c 75 73 74 65 72 52 6f 6c 65 1a 06 72 65 61 64 65 72 1a 00 22 00""")
# kubectl create quota q1 --hard=pods=10,requests.cpu=1 --scopes=BestEffort
QUOTA = _hex("""6b 38 73 00 0a 13 0a 02 76 31 12 0d 52 65 73 6f 75 72 63 65 51 75 6f 74 61 12 47 0a 12 0a 02 71 31 12
00 1a 00 22 00 2a 00 32 00 38 00 42 00 12 2f 0a 0c 0a 04 70 6f 64 73 12 04 0a 02 31 30 0a 13 0a 0c 72 65 71 75 65 73
74 73 2e 63 70 75 12 03 0a 01 31 12 0a 42 65 73 74 45 66 66 6f 72 74 1a 00 1a 00 22 00""")
# kubectl create pdb p1 --selector=app=x --min-available=1
PDB = _hex("""6b 38 73 00 0a 20 0a 09 70 6f 6c 69 63 79 2f 76 31 12 13 50 6f 64 44 69 73 72 75 70 74 69 6f 6e 42 75 64
67 65 74 12 36 0a 12 0a 02 70 31 12 00 1a 00 22 00 2a 00 32 00 38 00 42 00 12 14 0a 06 08 00 10 01 1a 00 12 0a 0a 08
0a 03 61 70 70 12 01 78 1a 0a 08 00 18 00 20 00 28 00 30 00 1a 00 22 00""")
# kubectl create priorityclass high --value=1000 --global-default=true --description=hi --preemption-policy=Never
PRIORITY = _hex("""6b 38 73 00 0a 25 0a 14 73 63 68 65 64 75 6c 69 6e 67 2e 6b 38 73 2e 69 6f 2f 76 31 12 0d 50 72 69
6f 72 69 74 79 43 6c 61 73 73 12 26 0a 14 0a 04 68 69 67 68 12 00 1a 00 22 00 2a 00 32 00 38 00 42 00 10 e8 07 18 01
22 02 68 69 2a 05 4e 65 76 65 72 1a 00 22 00""")
# kubectl autoscale deployment nginx-deployment --max=3 --min=2 --cpu=80%
AUTOSCALER = _hex("""6b 38 73 00 0a 29 0a 0e 61 75 74 6f 73 63 61 6c 69 6e 67 2f 76 32 12 17 48 6f 72 69 7a 6f 6e 74
61 6c 50 6f 64 41 75 74 6f 73 63 61 6c 65 72 12 7b 0a 20 0a 10 6e 67 69 6e 78 2d 64 65 70 6c 6f 79 6d 65 6e 74 12 00
1a 00 22 00 2a 00 32 00 38 00 42 00 12 51 0a 27 0a 0a 44 65 70 6c 6f 79 6d 65 6e 74 12 10 6e 67 69 6e 78 2d 64 65 70
6c 6f 79 6d 65 6e 74 1a 07 61 70 70 73 2f 76 31 10 02 18 03 22 22 0a 08 52 65 73 6f 75 72 63 65 22 16 0a 03 63 70 75
12 0f 0a 0b 55 74 69 6c 69 7a 61 74 69 6f 6e 20 50 1a 04 18 00 20 00 1a 00 22 00""")
# kubectl create sa robot2
SERVICEACCOUNT = _hex("""6b 38 73 00 0a 14 0a 02 76 31 12 0e 53 65 72 76 69 63 65 41 63 63 6f 75 6e 74 12 18 0a 16 0a
06 72 6f 62 6f 74 32 12 00 1a 00 22 00 2a 00 32 00 38 00 42 00 1a 00 22 00""")


@pytest.mark.parametrize(("body", "expected"), [
    (CLUSTERROLE, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "reader"},
                   "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["x"]},
                             {"verbs": ["get", "list"], "apiGroups": ["apps"], "resources": ["deployments"],
                              "resourceNames": ["x"]}]}),
    (BINDING, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "rb"},
               "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "jane"},
                            {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "g"},
                            {"kind": "ServiceAccount", "name": "robot2", "namespace": "default"}],
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"}}),
    (QUOTA, {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q1"},
             "spec": {"hard": {"pods": "10", "requests.cpu": "1"}, "scopes": ["BestEffort"]}}),
    (PDB, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "p1"},
           "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "x"}}}}),
    (PRIORITY, {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "high"},
                "value": 1000, "globalDefault": True, "description": "hi", "preemptionPolicy": "Never"}),
    (SERVICEACCOUNT, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot2"}}),
    (AUTOSCALER, {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                  "metadata": {"name": "nginx-deployment"},
                  "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "nginx-deployment", "apiVersion": "apps/v1"},
                           "minReplicas": 2, "maxReplicas": 3,
                           "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                               "type": "Utilization", "averageUtilization": 80}}}]}}),
], ids=["clusterrole", "clusterrolebinding", "quota", "pdb", "priorityclass", "serviceaccount", "autoscale"])
def test_kubectls_protobuf_bodies_decode_to_the_objects_it_means(body: bytes, expected: dict) -> None:
    assert protobuf.decode(body) == expected
    assert load_documents(json.dumps(expected)).objects  # and they load


NOW = datetime(2026, 12, 6, tzinfo=UTC)
META = {"name": "x", "creationTimestamp": "2026-12-05T23:59:00Z"}


@pytest.mark.parametrize(("kind", "obj", "cells"), [
    ("ServiceAccount", {"metadata": META, "secrets": [{"name": "t"}]}, ["x", "1", "60s"]),
    ("RoleBinding", {"metadata": META, "roleRef": {"kind": "Role", "name": "r"}}, ["x", "Role/r", "60s"]),
    ("NetworkPolicy", {"metadata": META, "spec": {"podSelector": {}}}, ["x", "<none>", "60s"]),
    ("PodDisruptionBudget", {"metadata": META, "spec": {"maxUnavailable": "25%"}}, ["x", "N/A", "25%", "0", "60s"]),
    ("HorizontalPodAutoscaler", {"metadata": META, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "w"},
                                                            "maxReplicas": 5}},
     ["x", "Deployment/w", "<unknown>", "1", "5", "0", "60s"]),
    ("ResourceQuota", {"metadata": META, "spec": {"hard": {"pods": "4", "limits.cpu": "2"}}},
     ["x", "60s", "pods: 0/4", "limits.cpu: 0/2"]),
    ("Role", {"metadata": META}, ["x", "2026-12-05T23:59:00Z"]),
    ("PriorityClass", {"metadata": META, "value": 7}, ["x", "7", "false", "60s", "PreemptLowerPriority"]),
])
def test_kubectls_columns(kind: str, obj: dict, cells: list[str]) -> None:
    assert columns.row(resolve_kind(kind), obj, NOW, wide=False, all_namespaces=False) == cells

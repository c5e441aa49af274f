"""The kinds meshd keeps without acting on them (meshd.model.kept), driven as a user drives them: a directory of
manifests in the style of the Kubernetes docs' examples, with a ServiceAccount, RBAC, a NetworkPolicy, a
PodDisruptionBudget, a HorizontalPodAutoscaler, a ResourceQuota, a LimitRange and a PriorityClass beside a
Deployment, applies whole with the real kubectl (it refused the lot before: "no matches for kind"), each kept kind
with a `Warning:` that says what meshd does not do with it; `kubectl get` shows kubectl's columns; `kubectl create
sa|role|rolebinding|clusterrole|clusterrolebinding|quota|pdb|priorityclass` and `kubectl autoscale` (protobuf
bodies) work; a changed manifest is applied as a patch; the Python client lists, reads, creates, deletes
(one, and a collection by label) and watches them; they outlive an agent restart; deleting the namespace takes them."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from tests.integration.agent_harness import agent_options, started_agent
from tests.integration import test_kubectl
from tests.integration.test_kubectl import Cluster, write_kubeconfig

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is needed")]
cluster = test_kubectl.cluster  # the fixture: a real agent, kubectl and the Python client pointed at it

APP = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: build-robot, namespace: shop}
automountServiceAccountToken: false
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {namespace: shop, name: pod-reader}
rules:
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "watch", "list"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: read-pods, namespace: shop}
subjects:
- kind: ServiceAccount
  name: build-robot
  namespace: shop
roleRef:
  kind: Role
  name: pod-reader
  apiGroup: rbac.authorization.k8s.io
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:shop-reader"}
rules:
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get"]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-policy, namespace: shop}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {role: frontend}}}]
    ports: [{protocol: TCP, port: 6379}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web-pdb, namespace: shop}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: compute, namespace: shop}
spec:
  hard: {requests.cpu: "1", requests.memory: 1Gi}
---
apiVersion: v1
kind: LimitRange
metadata: {name: cpu-defaults, namespace: shop}
spec:
  limits:
  - {type: Container, default: {cpu: 500m}, defaultRequest: {cpu: 250m}}
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: shop-high}
value: 1000000
globalDefault: false
description: "for the shop's pods"
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: build-robot
      priorityClassName: shop-high
      containers:
      - {name: main, image: busybox, command: [sleep, "3600"]}
"""
KEPT = ("serviceaccount/build-robot", "role.rbac.authorization.k8s.io/pod-reader",
        "rolebinding.rbac.authorization.k8s.io/read-pods", "networkpolicy.networking.k8s.io/db-policy",
        "poddisruptionbudget.policy/web-pdb", "horizontalpodautoscaler.autoscaling/web", "resourcequota/compute",
        "limitrange/cpu-defaults")


async def ok(cluster: Cluster, *args: str) -> str:
    code, out, err = await cluster.kubectl(*args)
    assert code == 0, (args, out, err)
    return out + err


async def test_a_directory_with_rbac_policies_and_quotas_applies_whole_and_they_are_kept(cluster: Cluster) -> None:
    app = cluster.cache / "app"
    app.mkdir()
    (app / "shop.yaml").write_text(APP)
    said = await ok(cluster, "apply", "-f", str(app))
    for name in (*KEPT, "clusterrole.rbac.authorization.k8s.io/system:shop-reader",
                 "priorityclass.scheduling.k8s.io/shop-high", "deployment.apps/web"):
        assert f"{name} created" in said, said
    assert "Warning: meshd does not enforce NetworkPolicies" in said
    assert "Warning: meshd does not authorize by RBAC" in said
    assert "Warning: meshd does not autoscale" in said

    out = await ok(cluster, "get", "sa,rolebinding,netpol,pdb,hpa,quota", "-n", "shop")
    assert "build-robot   0 " in out and "Role/pod-reader" in out and "role=db" in out
    assert "Deployment/web" in out and "requests.cpu: 0/1" in out
    assert (await ok(cluster, "get", "role", "pod-reader", "-n", "shop", "-o",
                     "jsonpath={.rules[0].verbs}")) == '["get","watch","list"]'
    assert (await ok(cluster, "get", "clusterrole", "system:shop-reader", "-o", "jsonpath={.metadata}")).find(
        '"namespace"') == -1  # cluster-scoped
    assert (await ok(cluster, "get", "pc", "shop-high", "-o", "jsonpath={.value}")) == "1000000"
    await ok(cluster, "rollout", "status", "deployment/web", "-n", "shop", "--timeout=60s")

    # a changed manifest: kubectl apply patches the kept object; nothing else changes
    (app / "shop.yaml").write_text(APP.replace('verbs: ["get", "watch", "list"]', 'verbs: ["get"]'))
    said = await ok(cluster, "apply", "-f", str(app))
    assert "role.rbac.authorization.k8s.io/pod-reader configured" in said and "deployment.apps/web unchanged" in said
    assert (await ok(cluster, "get", "role", "pod-reader", "-n", "shop", "-o", "jsonpath={.rules[0].verbs}")) == \
        '["get"]'
    assert "couldn't find" not in await ok(cluster, "explain", "networkpolicy.spec.podSelector")

    # kubectl's generators send protobuf bodies
    for args in (("sa", "robot"), ("role", "r2", "--verb=get", "--resource=pods"),
                 ("rolebinding", "rb2", "--role=r2", "--serviceaccount=shop:robot"),
                 ("clusterrole", "reader", "--verb=get,list", "--resource=pods,deployments.apps"),
                 ("clusterrolebinding", "crb", "--clusterrole=reader", "--user=jane", "--group=devs"),
                 ("quota", "q1", "--hard=pods=10,requests.cpu=1", "--scopes=BestEffort"),
                 ("pdb", "p1", "--selector=app=web", "--max-unavailable=1"),
                 ("priorityclass", "low", "--value=10", "--description=batch")):
        await ok(cluster, "create", *args, *(("-n", "shop") if args[0] not in ("clusterrole", "clusterrolebinding",
                                                                              "priorityclass") else ()))
    assert (await ok(cluster, "get", "clusterrole", "reader", "-o", "jsonpath={.rules[1]}")) == \
        '{"apiGroups":["apps"],"resources":["deployments"],"verbs":["get","list"]}'
    assert (await ok(cluster, "get", "clusterrolebinding", "crb", "-o", "jsonpath={.subjects[*].name}")) == \
        "jane devs"
    assert (await ok(cluster, "get", "rolebinding", "rb2", "-n", "shop", "-o", "jsonpath={.subjects[0]}")) == \
        '{"kind":"ServiceAccount","name":"robot","namespace":"shop"}'
    assert (await ok(cluster, "get", "quota", "q1", "-n", "shop", "-o", "jsonpath={.spec}")) == \
        '{"hard":{"pods":"10","requests.cpu":"1"},"scopes":["BestEffort"]}'
    assert (await ok(cluster, "get", "pdb", "p1", "-n", "shop", "-o", "jsonpath={.spec.maxUnavailable}")) == "1"
    assert (await ok(cluster, "get", "pc", "low", "-o", "jsonpath={.description}")) == "batch"
    assert "autoscaled" in await ok(cluster, "autoscale", "deployment", "web", "-n", "shop", "--name=web-cpu",
                                    "--min=2", "--max=4", "--cpu=80%")
    assert (await ok(cluster, "get", "hpa", "web-cpu", "-n", "shop", "-o", "jsonpath={.spec.metrics[0]}")) == \
        '{"resource":{"name":"cpu","target":{"averageUtilization":80,"type":"Utilization"}},"type":"Resource"}'

    kubernetes = pytest.importorskip("kubernetes")

    def use_the_client() -> dict:
        client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        core, rbac = kubernetes.client.CoreV1Api(client), kubernetes.client.RbacAuthorizationV1Api(client)
        policy = kubernetes.client.PolicyV1Api(client)
        seen: dict = {"sa": sorted(s.metadata.name for s in core.list_namespaced_service_account("shop").items)}
        seen["binding"] = rbac.read_namespaced_role_binding("read-pods", "shop").role_ref.name
        seen["clusterroles"] = sorted(r.metadata.name for r in rbac.list_cluster_role().items)
        seen["pdb"] = policy.read_namespaced_pod_disruption_budget("web-pdb", "shop").spec.min_available
        core.create_namespaced_service_account("shop", {"metadata": {"name": "from-python"}})
        core.delete_namespaced_service_account("robot", "shop")
        for name in ("batch-1", "batch-2"):
            core.create_namespaced_service_account("shop", {"metadata": {"name": name, "labels": {"tier": "batch"}}})
        seen["collection"] = core.delete_collection_namespaced_service_account("shop", label_selector="tier=batch").status
        seen["after"] = sorted(s.metadata.name for s in core.list_namespaced_service_account("shop").items)
        seen["watched"] = sorted((e["type"], e["object"].metadata.name) for e in kubernetes.watch.Watch().stream(
            core.list_namespaced_service_account, "shop", timeout_seconds=1))
        return seen

    seen = await asyncio.to_thread(use_the_client)
    assert seen == {"sa": ["build-robot", "robot"], "binding": "pod-reader",
                    "clusterroles": ["reader", "system:shop-reader"], "pdb": 1,
                    "collection": "Success", "after": ["build-robot", "from-python"],
                    "watched": [("ADDED", "build-robot"), ("ADDED", "from-python")]}


async def test_kept_objects_outlive_a_restart_and_go_with_their_namespace(tmp_path, agent_id, monkeypatch):
    options = agent_options(tmp_path, agent_id, driver="process")
    agent = await started_agent(options)
    monkeypatch.setenv("MESHD_TOKEN", agent.token)
    cluster = Cluster(f"http://{options.api}", await write_kubeconfig(f"http://{options.api}", options.state_dir,
                                                                      tmp_path / "kubeconfig"), tmp_path)
    try:
        (tmp_path / "shop.yaml").write_text(APP)
        await ok(cluster, "apply", "-f", str(tmp_path / "shop.yaml"))
        uid = await ok(cluster, "get", "netpol", "db-policy", "-n", "shop", "-o", "jsonpath={.metadata.uid}")
    finally:
        await agent.close(stop_pods=False)
    agent = await started_agent(options)
    try:
        assert await ok(cluster, "get", "netpol", "db-policy", "-n", "shop", "-o", "jsonpath={.metadata.uid}") == uid
        out = await ok(cluster, "get", ",".join(k.split("/")[0] for k in KEPT), "-n", "shop", "-o", "name")
        assert sorted(out.split()) == sorted(KEPT)
        await ok(cluster, "delete", "namespace", "shop", "--timeout=60s")
        code, out, err = await cluster.kubectl("get", "sa,role,netpol,pdb", "-n", "shop", "-o", "name")
        assert out.strip() == "", (out, err)
        assert "system:shop-reader" in await ok(cluster, "get", "clusterroles", "-o", "name")  # not namespaced
    finally:
        await agent.close(stop_pods=True)

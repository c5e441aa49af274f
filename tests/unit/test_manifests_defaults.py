"""Kubernetes' defaults, so a manifest means the same in meshd as in a cluster; warnings for ignored fields."""

from __future__ import annotations

from typing import Any

import pytest
from test_manifests_helpers import patched, to_yaml

from meshd.manifests import load_documents
from meshd.manifests.pods import default_pull_policy
from meshd.model.objects import (
    Deployment,
    ExecAction,
    HTTPGetAction,
    Pod,
    PreStop,
    ReplicaSet,
    RollingUpdateStrategy,
    Service,
    ServicePort,
    TCPSocketAction,
)


def load_one(doc: dict[str, Any]) -> Any:
    result = load_documents(to_yaml(doc))
    assert len(result.objects) == 1
    return result.objects[0]


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("localhost:5000/app", "Always"),
        ("localhost:5000/app:v2", "IfNotPresent"),
        ("localhost:5000/app:latest", "Always"),
        ("app@sha256:" + "a" * 64, "IfNotPresent"),
        ("registry.example.com/team/app:2024-01", "IfNotPresent"),
    ],
)
def test_image_pull_policy_default(image: str, policy: str) -> None:
    assert default_pull_policy(image) == policy
    pod = load_one(patched("pod", "spec.containers.0.image", image))
    assert pod.spec.containers[0].image_pull_policy == policy


def test_explicit_pull_policy_wins() -> None:
    pod = load_one(patched("pod", "spec.containers.0.imagePullPolicy", "Never"))
    assert pod.spec.containers[0].image_pull_policy == "Never"


def test_deployment_defaults() -> None:
    doc = patched("deployment", "spec.replicas", None)  # null counts as absent
    dep = load_one(doc)
    assert isinstance(dep, Deployment)
    assert dep.replicas == 1
    assert dep.strategy == "RollingUpdate"
    assert dep.rolling_update == RollingUpdateStrategy("25%", "25%")
    assert dep.progress_deadline_seconds == 600
    assert dep.revision_history_limit == 10
    assert dep.min_ready_seconds == 0
    assert dep.paused is False
    assert dep.metadata.namespace == "default"
    assert dep.template.metadata.namespace == "default"
    assert dep.template.metadata.name == ""
    spec = dep.template.spec
    assert spec.restart_policy == "Always"
    assert spec.termination_grace_period_seconds == 30
    assert spec.share_process_namespace is False
    assert dep.raw["spec"]["replicas"] is None  # raw is the document as written


def test_deployment_fields() -> None:
    doc = patched(
        "deployment",
        "spec.strategy",
        {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
    )
    doc["metadata"]["namespace"] = "prod"
    doc["spec"].update(
        minReadySeconds=5, progressDeadlineSeconds=120, revisionHistoryLimit=2, paused=True, replicas=0
    )
    dep = load_one(doc)
    assert dep.rolling_update == RollingUpdateStrategy(max_surge=1, max_unavailable=0)
    assert (dep.min_ready_seconds, dep.progress_deadline_seconds, dep.revision_history_limit) == (5, 120, 2)
    assert dep.paused is True and dep.replicas == 0
    assert dep.metadata.namespace == dep.template.metadata.namespace == "prod"
    recreate = load_one(patched("deployment", "spec.strategy", {"type": "Recreate"}))
    assert recreate.strategy == "Recreate"
    percent = load_one(patched("deployment", "spec.strategy", {"rollingUpdate": {"maxSurge": "50%"}}))
    assert percent.rolling_update == RollingUpdateStrategy(max_surge="50%", max_unavailable="25%")


def test_replica_set() -> None:
    rs = load_one(patched("replicaset", "spec.minReadySeconds", 3))
    assert isinstance(rs, ReplicaSet)
    assert rs.replicas == 3 and rs.min_ready_seconds == 3
    assert rs.selector.match_labels == {"app": "web"}


def test_probe_defaults_and_fractions() -> None:
    dep = load_one(patched("deployment", "", None))
    probe = dep.template.spec.containers[0].readiness_probe
    assert probe.handler == HTTPGetAction(port="http", path="/", scheme="HTTP")
    assert (probe.initial_delay_seconds, probe.period_seconds, probe.timeout_seconds) == (0, 10, 1)
    assert (probe.success_threshold, probe.failure_threshold) == (1, 3)
    fast = {
        "tcpSocket": {"port": 80},
        "periodSeconds": 0.2,
        "timeoutSeconds": 0.1,
        "initialDelaySeconds": 0.5,
        "failureThreshold": 2,
        "successThreshold": 2,
    }
    probe = (
        load_one(patched("deployment", "spec.template.spec.containers.0.readinessProbe", fast))
        .template.spec.containers[0]
        .readiness_probe
    )
    assert probe.handler == TCPSocketAction(port=80)
    assert (probe.period_seconds, probe.timeout_seconds, probe.initial_delay_seconds) == (0.2, 0.1, 0.5)
    assert (probe.success_threshold, probe.failure_threshold) == (2, 2)


def test_probe_zero_means_default_as_in_kubernetes() -> None:
    zeros = {"exec": {"command": ["true"]}, "periodSeconds": 0, "timeoutSeconds": 0, "failureThreshold": 0}
    probe = (
        load_one(patched("pod", "spec.containers.0.livenessProbe", zeros)).spec.containers[0].liveness_probe
    )
    assert probe.handler == ExecAction(command=("true",))
    assert (probe.period_seconds, probe.timeout_seconds, probe.failure_threshold) == (10, 1, 3)


def test_http_probe_fields() -> None:
    http = {
        "httpGet": {
            "path": "/healthz",
            "port": 8080,
            "host": "127.0.0.1",
            "scheme": "HTTPS",
            "httpHeaders": [{"name": "X-A", "value": "1"}],
        }
    }
    probe = load_one(patched("pod", "spec.containers.0.startupProbe", http)).spec.containers[0].startup_probe
    assert probe.handler == HTTPGetAction(
        port=8080, path="/healthz", host="127.0.0.1", scheme="HTTPS", http_headers=(("X-A", "1"),)
    )


def test_container_fields() -> None:
    container = {
        "name": "app",
        "image": "busybox:1.36",
        "command": ["sh", "-c"],
        "args": ["echo $A"],
        "workingDir": "/srv",
        "env": [{"name": "A", "value": "1"}, {"name": "EMPTY"}],
        "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 53, "protocol": "UDP"}],
        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": 0.25}},
        "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm", "readOnly": True}],
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
    }
    doc = patched("pod", "spec.containers.0", container)
    doc["spec"]["volumes"] = [{"name": "shm", "emptyDir": {"medium": "Memory"}}]
    doc["spec"]["shareProcessNamespace"] = True
    doc["spec"]["terminationGracePeriodSeconds"] = 2.5
    doc["spec"]["hostname"] = "box"
    doc["spec"]["subdomain"] = "sub"
    pod = load_one(doc)
    assert isinstance(pod, Pod)
    c = pod.spec.containers[0]
    assert c.command == ("sh", "-c") and c.args == ("echo $A",) and c.working_dir == "/srv"
    assert [(e.name, e.value) for e in c.env] == [("A", "1"), ("EMPTY", "")]
    assert [(p.container_port, p.name, p.protocol) for p in c.ports] == [
        (8080, "http", "TCP"),
        (53, None, "UDP"),
    ]
    assert c.resources.limits.cpu_millicores == 500 and c.resources.limits.memory_bytes == 64 * 2**20
    # a request left out defaults to the limit (Kubernetes' defaulting); a given one is kept
    assert c.resources.requests.cpu_millicores == 250 and c.resources.requests.memory_bytes == 64 * 2**20
    assert c.volume_mounts[0].read_only is True and c.volume_mounts[0].mount_path == "/dev/shm"
    assert c.pre_stop == PreStop(sleep_seconds=5)
    assert pod.spec.volumes[0].medium == "Memory"
    assert pod.spec.share_process_namespace is True
    assert pod.spec.termination_grace_period_seconds == 2.5
    assert (pod.spec.hostname, pod.spec.subdomain) == ("box", "sub")
    assert c.port_number("http") == 8080


def test_pre_stop_exec() -> None:
    hook = {"preStop": {"exec": {"command": ["nginx", "-s", "quit"]}}}
    pod = load_one(patched("pod", "spec.containers.0.lifecycle", hook))
    assert pod.spec.containers[0].pre_stop == PreStop(exec_command=("nginx", "-s", "quit"))


def test_volume_without_source_is_empty_dir() -> None:
    doc = patched("pod", "spec.volumes", [{"name": "scratch"}])
    assert load_one(doc).spec.volumes[0].medium == ""


def test_pod_restart_policies() -> None:
    for policy in ("Always", "OnFailure", "Never"):
        assert load_one(patched("pod", "spec.restartPolicy", policy)).spec.restart_policy == policy


def test_service_defaults() -> None:
    svc = load_one(patched("service", "spec.ports", [{"port": 80}]))
    assert isinstance(svc, Service)
    assert svc.ports == (ServicePort(port=80, target_port=80, name="", protocol="TCP"),)
    assert svc.headless is False and svc.cluster_ip is None
    assert svc.metadata.namespace == "default"


def test_service_fields() -> None:
    ports = [
        {"name": "http", "port": 80, "targetPort": "http"},
        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353},
    ]
    svc = load_one(patched("service", "spec.ports", ports))
    assert svc.ports == (ServicePort(80, "http", "http", "TCP"), ServicePort(53, 5353, "dns", "UDP"))
    headless = load_one(patched("service", "spec.clusterIP", "None"))
    assert headless.headless is True and headless.cluster_ip is None
    assert svc.traffic_distribution is None
    close = load_one(patched("service", "spec.trafficDistribution", "PreferClose"))
    assert close.traffic_distribution == "PreferClose"
    fixed = load_one(patched("service", "spec.clusterIP", "10.213.128.9"))
    assert fixed.cluster_ip == "10.213.128.9" and not fixed.headless
    no_ports = load_one(patched("service", "spec", {"clusterIP": "None", "selector": {"app": "db"}}))
    assert no_ports.ports == () and no_ports.headless


def test_empty_documents_and_lists() -> None:
    text = "---\n---\n" + to_yaml(patched("pod", "", None)) + "---\n# just a comment\n---\n"
    assert [o.metadata.name for o in load_documents(text).objects] == ["one"]
    assert load_documents("").objects == ()
    items = [patched("pod", "", None), patched("service", "", None)]
    result = load_documents(to_yaml({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}))
    assert [o.kind for o in result.objects] == ["Pod", "Service"]
    assert result.objects[1].raw["kind"] == "Service"  # each item keeps its own document
    typed = {
        "apiVersion": "v1",
        "kind": "PodList",
        "items": [{"metadata": {"name": "x"}, "spec": items[0]["spec"]}],
    }
    assert load_documents(to_yaml(typed)).objects[0].metadata.name == "x"


def test_objects_keep_document_order_and_raw() -> None:
    docs = [
        patched("service", "", None),
        patched("deployment", "", None),
        patched("pod", "", None),
        patched("replicaset", "", None),
    ]
    result = load_documents(to_yaml(*docs))
    assert [o.kind for o in result.objects] == ["Service", "Deployment", "Pod", "ReplicaSet"]
    assert [o.raw for o in result.objects] == docs
    assert result.warnings == ()


WARN_CASES = [
    ("metadata.uid", "abc", "metadata.uid: ignored (set by the server)"),
    ("metadata.creationTimestamp", "2024-01-01T00:00:00Z", "metadata.creationTimestamp: ignored"),
    ("status", {"replicas": 3}, "status: ignored"),
    ("spec.template.spec.schedulerName", "my-scheduler", "spec.template.spec.schedulerName: ignored"),
    ("spec.template.spec.serviceAccountName", "default", "serviceAccountName: ignored"),
    ("spec.template.spec.dnsPolicy", "Default", "dnsPolicy: ignored"),
    (
        "spec.template.spec.containers.0.terminationMessagePath",
        "/tmp/log",
        "terminationMessagePath",
    ),
    ("spec.template.spec.priorityClassName", "high", "priorityClassName: ignored"),
    ("spec.template.metadata.name", "x", "spec.template.metadata.name: ignored"),
    ("spec.template.spec.volumes.0.emptyDir.sizeLimit", "1Gi", "volumes[0].emptyDir.sizeLimit: not enforced"),
    ("spec.template.spec.containers.0.resources", {"limits": {"memory": "64m"}}, 'did you mean "64Mi"?'),
    (
        "spec.template.spec.containers.0.resources",
        {"limits": {"ephemeral-storage": "1Gi"}},
        "ephemeral-storage: not enforced",
    ),
    (
        "spec.template.spec.containers.0.env",
        [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}],
        "duplicate environment variable",
    ),
]


@pytest.mark.parametrize(("path", "value", "words"), WARN_CASES, ids=[c[0] for c in WARN_CASES])
def test_harmless_fields_warn_with_their_path(path: str, value: Any, words: str) -> None:
    result = load_documents(to_yaml(patched("deployment", path, value)), source="d.yaml")
    assert len(result.objects) == 1
    assert len(result.warnings) == 1, result.warnings
    assert result.warnings[0].startswith("d.yaml: document 1 (Deployment web): ")
    assert words in result.warnings[0]


def test_node_port_and_load_balancer_services_load_without_warnings() -> None:
    for service_type in ("NodePort", "LoadBalancer"):
        doc = patched("service", "spec.type", service_type)
        doc["spec"]["ports"][0]["nodePort"] = 30080
        result = load_documents(to_yaml(doc))
        assert not result.warnings
        (svc,) = result.objects
        assert (svc.type, svc.ports[0].port, svc.ports[0].node_port) == (service_type, 80, 30080)


def test_duplicate_object_warns() -> None:
    result = load_documents(to_yaml(patched("pod", "", None), patched("pod", "", None)))
    assert len(result.objects) == 2
    assert "Pod default/one appears more than once" in result.warnings[0]


def test_yaml_merge_keys_and_timestamps() -> None:
    text = """
apiVersion: v1
kind: Pod
metadata: {name: one, labels: {when: 2024-01-01}}
spec:
  containers:
  - &app {name: app, image: "busybox:1.36", command: [sleep, "10"]}
  - {<<: *app, name: two}
"""
    (pod,) = load_documents(text).objects
    assert [c.name for c in pod.spec.containers] == ["app", "two"]
    assert pod.spec.containers[1].command == ("sleep", "10")
    assert pod.metadata.labels == {"when": "2024-01-01"}  # a YAML timestamp stays text, as in Kubernetes


def test_unknown_top_level_key_is_an_error() -> None:
    with pytest.raises(ValueError, match="base: unknown field"):
        load_documents(
            "base: 1\napiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 1}]}\n"
        )


def test_load_objects_takes_parsed_documents() -> None:
    from meshd.manifests import ManifestError, load_objects

    doc = patched("deployment", "", None)
    result = load_objects([doc, None, patched("service", "", None)], source="state")
    assert [o.kind for o in result.objects] == ["Deployment", "Service"]
    assert result.objects[0].raw == doc and result.objects[0].raw is not doc
    assert result.objects == load_documents(to_yaml(doc, patched("service", "", None))).objects
    with pytest.raises(ManifestError, match=r"^state: document 2 \(Pod one\): spec.replicas: unknown field"):
        load_objects([doc, patched("pod", "spec.replicas", 1)], source="state")
    with pytest.raises(ManifestError, match="not a JSON-like document"):
        load_objects([{"a": {1, 2}}])


KUBECTL_GET_OUTPUT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  annotations: {deployment.kubernetes.io/revision: "1"}
  creationTimestamp: null
  labels: {app: web}
  name: web
spec:
  progressDeadlineSeconds: 600
  replicas: 1
  revisionHistoryLimit: 10
  selector: {matchLabels: {app: web}}
  strategy: {}
  template:
    metadata:
      creationTimestamp: null
      labels: {app: web}
    spec:
      containers:
      - image: nginx
        imagePullPolicy: Always
        name: nginx
        resources: {}
        terminationMessagePath: /dev/termination-log
        terminationMessagePolicy: File
      dnsPolicy: ClusterFirst
      restartPolicy: Always
      schedulerName: default-scheduler
      securityContext: {}
      terminationGracePeriodSeconds: 30
      hostNetwork: false
      initContainers: []
      volumes: [{name: v, hostPath: null, emptyDir: {}}]
status: {}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  internalTrafficPolicy: Cluster
  ipFamilies: [IPv4]
  ipFamilyPolicy: SingleStack
  ports: [{port: 80, protocol: TCP, targetPort: 80}]
  selector: {app: web}
  sessionAffinity: None
  type: ClusterIP
status: {loadBalancer: {}}
"""


def test_defaults_as_kubectl_prints_them_are_silent() -> None:
    result = load_documents(KUBECTL_GET_OUTPUT)
    assert [o.kind for o in result.objects] == ["Deployment", "Service"]
    assert result.warnings == ("<stdin>: document 2 (Service web): status: ignored (status is set by meshd)",)

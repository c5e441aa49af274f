"""`meshd get` tables, -o json|yaml|name and `meshd describe`, on Kubernetes-shaped sample objects."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest
import yaml

from meshd.cli import describe, output, tables
from meshd.cli.kinds import DEPLOYMENT, ENDPOINTS, POD, REPLICASET, SERVICE

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


def pod(
    name="web-7d4b9c-x2k8p",
    *,
    created="2026-11-24T11:55:00Z",
    ready=True,
    restarts=0,
    state=None,
    last_state=None,
    phase="Running",
    ip="10.213.0.5",
    containers=("web",),
    deletion=None,
):
    statuses = []
    for c in containers:
        statuses.append(
            {
                "name": c,
                "image": "meshd/demo:1",
                "imageID": "docker-pullable://meshd/demo@sha256:ab12",
                "containerID": f"docker://{c}0123456789",
                "ready": ready,
                "restartCount": restarts,
                "started": True,
                "state": state or {"running": {"startedAt": "2026-11-24T11:55:02Z"}},
                "lastState": last_state or {},
            }
        )
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": "3f1c2a4e-0000-4000-8000-000000000001",
            "creationTimestamp": created,
            "labels": {"app": "web", "pod-template-hash": "7d4b9c"},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c", "controller": True}
            ],
        },
        "spec": {
            "nodeName": "meshd-node",
            "restartPolicy": "Always",
            "containers": [
                {
                    "name": c,
                    "image": "meshd/demo:1",
                    "ports": [{"containerPort": 8080, "protocol": "TCP", "name": "http"}],
                    "env": [{"name": "VERSION", "value": "1"}],
                    "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 0.2},
                    "livenessProbe": {"tcpSocket": {"port": "http"}, "failureThreshold": 5},
                }
                for c in containers
            ],
        },
        "status": {
            "phase": phase,
            "hostIP": "10.213.0.1",
            "podIP": ip,
            "podIPs": [{"ip": ip}] if ip else [],
            "startTime": "2026-11-24T11:55:00Z",
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": "True" if ready else "False"},
                {"type": "ContainersReady", "status": "True" if ready else "False"},
                {"type": "PodScheduled", "status": "True"},
            ],
            "containerStatuses": statuses,
        },
    }
    if deletion:
        obj["metadata"]["deletionTimestamp"] = deletion
    return obj


CRASHLOOP = {
    "waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s restarting failed container=web"}
}
LAST_ERROR = {
    "terminated": {
        "exitCode": 1,
        "reason": "Error",
        "startedAt": "2026-11-24T11:58:00Z",
        "finishedAt": "2026-11-24T11:59:18Z",
    }
}


def deployment(
    *, replicas=3, ready=3, updated=3, available=3, total=3, generation=2, observed=2, conditions=None
):
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "generation": generation,
            "creationTimestamp": "2026-11-24T09:00:00Z",
            "labels": {"app": "web"},
            "annotations": {"deployment.kubernetes.io/revision": "2"},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "web", "image": "meshd/demo:2", "ports": [{"containerPort": 8080}]}
                    ]
                },
            },
        },
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "unavailableReplicas": max(0, replicas - available),
            "conditions": conditions
            if conditions is not None
            else [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        },
    }


def replicaset(name="web-7d4b9c", revision="2", replicas=3, ready=3):
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": "default",
            "creationTimestamp": "2026-11-24T10:00:00Z",
            "labels": {"app": "web", "pod-template-hash": name.rsplit("-", 1)[1]},
            "annotations": {"deployment.kubernetes.io/revision": revision},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "controller": True}
            ],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web", "pod-template-hash": name.rsplit("-", 1)[1]}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "meshd/demo:2"}]},
            },
        },
        "status": {"replicas": replicas, "readyReplicas": ready, "availableReplicas": ready},
    }


SERVICE_WEB = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {
        "name": "web",
        "namespace": "default",
        "creationTimestamp": "2026-11-22T12:00:00Z",
        "annotations": {"meshd.io/lb-algorithm": "ewma"},
    },
    "spec": {
        "type": "ClusterIP",
        "clusterIP": "10.213.128.7",
        "selector": {"app": "web"},
        "ports": [
            {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
            {"name": "admin", "port": 9090, "targetPort": "admin", "protocol": "TCP"},
        ],
    },
}

ENDPOINTS_WEB = {
    "apiVersion": "v1",
    "kind": "Endpoints",
    "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-11-22T12:00:00Z"},
    "subsets": [
        {
            "addresses": [
                {"ip": "10.213.0.5", "targetRef": {"kind": "Pod", "name": "web-a"}},
                {"ip": "10.213.0.6", "targetRef": {"kind": "Pod", "name": "web-b"}},
                {"ip": "10.213.0.7", "targetRef": {"kind": "Pod", "name": "web-c"}},
            ],
            "notReadyAddresses": [{"ip": "10.213.0.9", "targetRef": {"kind": "Pod", "name": "web-d"}}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        }
    ],
}


# --- pod columns --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sample, ready, status, restarts",
    [
        (pod(), "1/1", "Running", "0"),
        (pod(ready=False), "0/1", "Running", "0"),
        (
            pod(ready=False, restarts=3, state=CRASHLOOP, last_state=LAST_ERROR),
            "0/1",
            "CrashLoopBackOff",
            "3 (42s ago)",
        ),
        (
            pod(ready=False, phase="Pending", ip="", state={"waiting": {"reason": "ContainerCreating"}}),
            "0/1",
            "ContainerCreating",
            "0",
        ),
        (
            pod(ready=False, state={"terminated": {"exitCode": 137, "reason": "OOMKilled"}}),
            "0/1",
            "OOMKilled",
            "0",
        ),
        (pod(ready=False, state={"terminated": {"exitCode": 2}}), "0/1", "ExitCode:2", "0"),
        (pod(ready=False, state={"terminated": {"signal": 9, "exitCode": 137}}), "0/1", "Signal:9", "0"),
        (pod(deletion="2026-11-24T11:59:59Z"), "1/1", "Terminating", "0"),
        (pod(containers=("web", "loader")), "2/2", "Running", "0"),
    ],
)
def test_pod_columns(sample, ready, status, restarts):
    assert tables.pod_ready(sample) == ready
    assert tables.pod_status(sample) == status
    assert tables.pod_restarts(sample, NOW) == restarts


def test_pod_pending_unschedulable_keeps_the_phase():
    sample = pod(ready=False, phase="Pending", ip="")
    sample["status"]["containerStatuses"] = []
    sample["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
    assert tables.pod_status(sample) == "Pending"
    assert tables.pod_ready(sample) == "0/1"


def test_pods_table_matches_kubectl_layout():
    pods = [pod(), pod("web-7d4b9c-abcde", ready=False, restarts=3, state=CRASHLOOP, last_state=LAST_ERROR)]
    text = output.render_objects([(POD, pods)], None, NOW)
    assert text.splitlines() == [
        "NAME               READY   STATUS             RESTARTS      AGE",
        "web-7d4b9c-x2k8p   1/1     Running            0             5m",
        "web-7d4b9c-abcde   0/1     CrashLoopBackOff   3 (42s ago)   5m",
    ]


def test_show_labels_adds_a_column():
    text = output.render_objects([(POD, [pod()])], None, NOW, show_labels=True)
    assert text.splitlines()[0].split()[-1] == "LABELS"
    assert text.splitlines()[1].split()[-1] == "app=web,pod-template-hash=7d4b9c"


def test_pods_wide_and_all_namespaces():
    text = output.render_objects([(POD, [pod()])], "wide", NOW, all_namespaces=True)
    head, line = text.splitlines()
    assert head.split() == [
        "NAMESPACE",
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
        "NOMINATED",
        "NODE",
        "READINESS",
        "GATES",
    ]
    assert line.split() == [
        "default",
        "web-7d4b9c-x2k8p",
        "1/1",
        "Running",
        "0",
        "5m",
        "10.213.0.5",
        "meshd-node",
        "<none>",
        "<none>",
    ]


# --- workloads, services, endpoints -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, obj, wide, expected",
    [
        (
            DEPLOYMENT,
            deployment(),
            False,
            ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "web", "3/3", "3", "3", "3h"],
        ),
        (
            DEPLOYMENT,
            deployment(replicas=5, ready=2, updated=1, available=2),
            False,
            ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "web", "2/5", "1", "2", "3h"],
        ),
        (
            DEPLOYMENT,
            deployment(),
            True,
            [
                "NAME",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "AGE",
                "CONTAINERS",
                "IMAGES",
                "SELECTOR",
                "web",
                "3/3",
                "3",
                "3",
                "3h",
                "web",
                "meshd/demo:2",
                "app=web",
            ],
        ),
        (
            REPLICASET,
            replicaset(),
            False,
            ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "web-7d4b9c", "3", "3", "3", "120m"],
        ),
        (
            SERVICE,
            SERVICE_WEB,
            False,
            [
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
                "web",
                "ClusterIP",
                "10.213.128.7",
                "<none>",
                "80/TCP,9090/TCP",
                "2d",
            ],
        ),
        (
            SERVICE,
            SERVICE_WEB,
            True,
            [
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
                "SELECTOR",
                "web",
                "ClusterIP",
                "10.213.128.7",
                "<none>",
                "80/TCP,9090/TCP",
                "2d",
                "app=web",
            ],
        ),
        (
            ENDPOINTS,
            ENDPOINTS_WEB,
            False,
            ["NAME", "ENDPOINTS", "AGE", "web", "10.213.0.5:8080,10.213.0.6:8080,10.213.0.7:8080", "2d"],
        ),
    ],
)
def test_tables(kind, obj, wide, expected):
    text = output.render_objects([(kind, [obj])], "wide" if wide else None, NOW)
    assert text.split() == expected


def test_headless_service_and_no_ports():
    svc = copy.deepcopy(SERVICE_WEB)
    svc["spec"]["clusterIP"] = "None"
    svc["spec"]["ports"] = []
    assert tables.service_row(svc, NOW, False)[2:5] == ["None", "<none>", "<none>"]


@pytest.mark.parametrize(
    "subsets, expected",
    [
        ([], "<none>"),
        ([{"notReadyAddresses": [{"ip": "10.213.0.9"}], "ports": [{"port": 80}]}], "<none>"),
        (
            [{"addresses": [{"ip": f"10.213.0.{i}"} for i in range(1, 6)], "ports": [{"port": 80}]}],
            "10.213.0.1:80,10.213.0.2:80,10.213.0.3:80 + 2 more...",
        ),
        ([{"addresses": [{"ip": "10.213.0.1"}]}], "10.213.0.1"),
        (
            [
                {
                    "addresses": [{"ip": "10.213.0.1"}],
                    "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}],
                }
            ],
            "10.213.0.1:80,10.213.0.1:81",
        ),
        ([{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}], "[fd00::1]:80"),
    ],
)
def test_endpoints_column(subsets, expected):
    assert tables.format_endpoints({"subsets": subsets}) == expected


def test_selector_expressions():
    selector = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }
    assert tables.format_selector(selector) == "app=web,tier in (a,b),!canary"


def test_get_all_prefixes_names_and_separates_tables():
    text = output.render_objects(
        [(POD, [pod()]), (SERVICE, [SERVICE_WEB]), (DEPLOYMENT, [deployment()]), (REPLICASET, [])], None, NOW
    )
    blocks = text.split("\n\n")
    assert len(blocks) == 3
    assert blocks[0].splitlines()[1].startswith("pod/web-7d4b9c-x2k8p ")
    assert blocks[1].splitlines()[1].startswith("service/web ")
    assert blocks[2].splitlines()[1].startswith("deployment.apps/web ")


# --- -o json | yaml | name ----------------------------------------------------------------------------------


def test_json_single_object_is_printed_as_is():
    sample = pod()
    assert json.loads(output.render_objects([(POD, [sample])], "json", NOW, single=True)) == sample


def test_json_list_is_a_v1_list_with_typed_items():
    item = pod()
    del item["apiVersion"], item["kind"]  # list items from the API may omit them
    doc = json.loads(output.render_objects([(POD, [item])], "json", NOW))
    assert doc["apiVersion"] == "v1" and doc["kind"] == "List"
    assert doc["items"][0]["kind"] == "Pod" and doc["items"][0]["apiVersion"] == "v1"
    assert doc["items"][0]["status"]["containerStatuses"][0]["restartCount"] == 0


def test_yaml_round_trips_and_sorts_keys():
    text = output.render_objects([(ENDPOINTS, [ENDPOINTS_WEB])], "yaml", NOW, single=True)
    assert yaml.safe_load(text) == ENDPOINTS_WEB
    assert text.startswith("apiVersion: v1\nkind: Endpoints\n")


def test_name_output():
    assert output.render_objects([(DEPLOYMENT, [deployment()]), (POD, [pod()])], "name", NOW) == (
        "deployment.apps/web\npod/web-7d4b9c-x2k8p"
    )


# --- describe -----------------------------------------------------------------------------------------------

EVENTS = [
    {
        "type": "Normal",
        "reason": "Started",
        "message": "Started container web",
        "count": 1,
        "involvedObject": {"kind": "Pod", "name": "web-7d4b9c-x2k8p"},
        "source": {"component": "meshd"},
        "firstTimestamp": "2026-11-24T11:55:02Z",
        "lastTimestamp": "2026-11-24T11:55:02Z",
    },
    {
        "type": "Warning",
        "reason": "Unhealthy",
        "message": "Readiness probe failed: HTTP probe failed with statuscode: 500",
        "count": 4,
        "involvedObject": {"kind": "Pod", "name": "web-7d4b9c-x2k8p"},
        "source": {"component": "meshd"},
        "firstTimestamp": "2026-11-24T11:58:00Z",
        "lastTimestamp": "2026-11-24T11:59:50Z",
    },
    {
        "type": "Normal",
        "reason": "Started",
        "message": "other pod",
        "involvedObject": {"kind": "Pod", "name": "other"},
        "lastTimestamp": "2026-11-24T11:59:50Z",
    },
]


def test_describe_pod_sections():
    sample = pod(ready=False, restarts=3, state=CRASHLOOP, last_state=LAST_ERROR)
    sample["status"]["containerStatuses"][0]["probes"] = [
        {
            "type": "readiness",
            "probe": "http-get http://:8080/ready delay=0s timeout=1s period=0.2s #success=1 #failure=3",
            "state": "failing",
            "last": "failure (3.1ms): HTTP probe failed with statuscode: 500",
        },
        {
            "type": "startup",
            "probe": "exec ['true'] delay=0s timeout=1s period=10s #success=1 #failure=3",
            "state": "",
            "last": "",
        },
    ]
    text = describe.describe_pod(sample, describe.events_for(EVENTS, "Pod", "web-7d4b9c-x2k8p"), NOW)
    lines = text.splitlines()
    assert lines[0] == "Name:         web-7d4b9c-x2k8p"
    assert "Controlled By:  ReplicaSet/web-7d4b9c" in lines
    assert "    State:          Waiting" in lines
    assert "      Reason:       CrashLoopBackOff" in lines
    assert "    Last State:     Terminated" in lines
    assert "      Exit Code:    1" in lines
    assert "    Ready:          False" in lines
    assert "    Restart Count:  3" in lines
    assert (
        "    Readiness:  http-get http://:8080/ready delay=0s timeout=1s period=0.2s #success=1 #failure=3"
        in lines
    )
    assert "    Liveness:   tcp-socket :http delay=0s timeout=1s period=10s #success=1 #failure=5" in lines
    assert "      Readiness:  failing; last: failure (3.1ms): HTTP probe failed with statuscode: 500" in lines
    assert "      Startup:    <none>" in lines
    assert (
        "    Startup:    exec ['true'] delay=0s timeout=1s period=10s #success=1 #failure=3" in lines
    )  # from the report
    assert "      cpu:      500m" in lines
    assert "QoS Class:         Guaranteed" in lines  # limits only: requests default to them
    events = lines[lines.index("Events:") + 1 :]
    assert events[0].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert events[3].split()[:6] == ["Warning", "Unhealthy", "10s", "(x4", "over", "2m)"]
    assert "other pod" not in text


def test_describe_pod_without_events():
    assert describe.describe_pod(pod(), [], NOW).splitlines()[-1] == "Events:            <none>"


def test_describe_deployment():
    conditions = [
        {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"},
    ]
    dep = deployment(updated=1, available=3, total=4, conditions=conditions)
    rss = [
        replicaset("web-5f6d7c", revision="1", replicas=3),
        replicaset("web-7d4b9c", revision="2", replicas=1, ready=0),
    ]
    text = describe.describe_deployment(dep, rss, [], NOW)
    lines = text.splitlines()
    assert "Replicas:               3 desired | 1 updated | 4 total | 3 available | 0 unavailable" in lines
    assert "StrategyType:           RollingUpdate" in lines
    assert "RollingUpdateStrategy:  0 max unavailable, 1 max surge" in lines
    assert lines[lines.index("Conditions:") + 4].split() == [
        "Progressing",
        "False",
        "ProgressDeadlineExceeded",
    ]
    assert "OldReplicaSets:  web-5f6d7c (3/3 replicas created)" in lines
    assert "NewReplicaSet:   web-7d4b9c (1/1 replicas created)" in lines
    assert "    Image:        meshd/demo:2" in lines


def test_describe_service_and_endpoints():
    text = describe.describe_service(SERVICE_WEB, ENDPOINTS_WEB, [], NOW)
    lines = text.splitlines()
    assert "Port:              http  80/TCP" in lines
    assert "TargetPort:        8080/TCP" in lines
    assert "Endpoints:         10.213.0.5:8080,10.213.0.6:8080,10.213.0.7:8080" in lines
    assert "Endpoints:         <none>" in lines  # the admin port has no endpoints
    text = describe.describe_endpoints(ENDPOINTS_WEB, [], NOW)
    assert "  Addresses:          10.213.0.5,10.213.0.6,10.213.0.7" in text.splitlines()
    assert "  NotReadyAddresses:  10.213.0.9" in text.splitlines()


def test_describe_load_balancer_service_shows_its_ingress_and_node_ports():
    svc = {**SERVICE_WEB, "spec": {**SERVICE_WEB["spec"], "type": "LoadBalancer", "ports": [
        {"name": "http", "port": 8080, "targetPort": 80, "protocol": "TCP", "nodePort": 31234}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}}  # fmt: skip
    lines = [" ".join(line.split()) for line in describe.describe_service(svc, None, [], NOW).splitlines()]
    assert "LoadBalancer Ingress: 127.0.0.1" in lines
    assert "NodePort: http 31234/TCP" in lines


def test_describe_replicaset_counts_pod_phases():
    pods = [pod(), pod("web-7d4b9c-p", phase="Pending", ready=False)]
    text = describe.describe_replicaset(replicaset(), pods, [], NOW)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert "Pods Status: 1 Running / 1 Waiting / 0 Succeeded / 0 Failed" in lines
    assert "Controlled By: Deployment/web" in lines
    assert "Replicas: 3 current / 3 desired" in lines


@pytest.mark.parametrize(
    "probe, expected",
    [
        (
            {"exec": {"command": ["cat", "/tmp/ok"]}, "initialDelaySeconds": 5},
            "exec [cat /tmp/ok] delay=5s timeout=1s period=10s #success=1 #failure=3",
        ),
        (
            {"httpGet": {"path": "/healthz", "port": 80, "scheme": "HTTPS", "host": "a"}},
            "http-get https://a:80/healthz delay=0s timeout=1s period=10s #success=1 #failure=3",
        ),
    ],
)
def test_describe_probe(probe, expected):
    assert describe.describe_probe(probe) == expected


@pytest.mark.parametrize(
    "resources, qos",
    [
        ({}, "BestEffort"),
        ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
        ({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}, "Burstable"),
        ({"requests": {"cpu": "500m"}}, "Burstable"),
    ],
)
def test_qos_class(resources, qos):
    assert describe.qos_class({"containers": [{"name": "a", "resources": resources}]}) == qos

"""OpenAPI v2 (swagger 2.0) and v3 documents for the kinds meshd serves, as `kubectl explain` and `kubectl apply`
read them. Generated from one compact table of the Kubernetes types and the fields meshd reads (DESIGN.md's
subset); kinds from meshd.api.kinds; what `kubectl explain` says of them from meshd.api.descriptions. Pure: no I/O."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import Any

from meshd.api import descriptions, endpointslices, keptschema
from meshd.api.discovery import KUBE_MAJOR, KUBE_MINOR, group_versions
from meshd.api.ingress import OPENAPI_TYPES
from meshd.api.kinds import ENDPOINTSLICE, EVENTS_V1, INGRESSCLASS, KINDS, NAMESPACE, NODE, Kind
from meshd.api.scheduling_openapi import SCHEDULING_POD_FIELDS, SCHEDULING_TYPES
from meshd.api.storage_openapi import STORAGE_TYPES, STORAGE_VOLUME_FIELDS

SERVED = (*KINDS, NAMESPACE, NODE, INGRESSCLASS, EVENTS_V1, ENDPOINTSLICE)
# types whose kind name another group's type has too: named "package.Kind" in the table below
QUALIFIED: dict[str, Kind] = {"events.Event": EVENTS_V1}

# A field's type: "string", "integer", "number", "boolean", "time", "quantity", "int-or-string", "object"
# (free-form), a type of this table by name, "[T]" (a list of T) or "{T}" (a map of string to T).
Fields = dict[str, str]
TYPES: dict[str, tuple[str, str, Fields]] = {  # name -> (package, description, fields)
    "ObjectMeta": ("meta", "Standard object's metadata.", {
        "name": "string", "namespace": "string", "uid": "string", "resourceVersion": "string",
        "generation": "integer", "creationTimestamp": "time", "deletionTimestamp": "time",
        "labels": "{string}", "annotations": "{string}", "ownerReferences": "[OwnerReference]",
        "managedFields": "[ManagedFieldsEntry]"}),
    "ManagedFieldsEntry": ("meta", "A field manager and the fields it owns (server-side apply).", {
        "manager": "string", "operation": "string", "apiVersion": "string", "time": "time", "fieldsType": "string",
        "fieldsV1": "object", "subresource": "string"}),
    "ListMeta": ("meta", "Standard list metadata.", {"resourceVersion": "string", "continue": "string",
                                                    "remainingItemCount": "integer"}),
    "OwnerReference": ("meta", "The object that owns this one.", {
        "apiVersion": "string", "kind": "string", "name": "string", "uid": "string", "controller": "boolean",
        "blockOwnerDeletion": "boolean"}),
    "LabelSelector": ("meta", "A label query over a set of resources.", {
        "matchLabels": "{string}", "matchExpressions": "[LabelSelectorRequirement]"}),
    "LabelSelectorRequirement": ("meta", "A selector requirement: a key, an operator and values.", {
        "key": "string", "operator": "string", "values": "[string]"}),
    "Pod": ("core", "Pod is a collection of containers that can run on a host.", {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta", "spec": "PodSpec",
        "status": "PodStatus"}),
    "PodSpec": ("core", "The specification of a pod's desired behavior.", {
        "containers": "[Container]", "initContainers": "[Container]", "volumes": "[Volume]",
        "restartPolicy": "string", "terminationGracePeriodSeconds": "integer", "nodeName": "string",
        "shareProcessNamespace": "boolean", "hostname": "string", "subdomain": "string",
        "securityContext": "PodSecurityContext", "hostNetwork": "boolean", "hostPID": "boolean",
        "hostIPC": "boolean", **SCHEDULING_POD_FIELDS}),
    "PodStatus": ("core", "The most recently observed status of the pod.", {
        "phase": "string", "conditions": "[PodCondition]", "message": "string", "reason": "string",
        "hostIP": "string", "podIP": "string", "podIPs": "[PodIP]", "startTime": "time",
        "containerStatuses": "[ContainerStatus]", "initContainerStatuses": "[ContainerStatus]", "qosClass": "string"}),
    "PodIP": ("core", "An IP address of the pod.", {"ip": "string"}),
    "PodCondition": ("core", "A condition of the pod.", {
        "type": "string", "status": "string", "reason": "string", "message": "string",
        "lastTransitionTime": "time"}),
    "Container": ("core", "A single application container to run within a pod.", {
        "name": "string", "image": "string", "imagePullPolicy": "string", "command": "[string]",
        "args": "[string]", "workingDir": "string", "env": "[EnvVar]", "ports": "[ContainerPort]",
        "resources": "ResourceRequirements", "volumeMounts": "[VolumeMount]", "livenessProbe": "Probe",
        "readinessProbe": "Probe", "startupProbe": "Probe", "lifecycle": "Lifecycle",
        "restartPolicy": "string", "securityContext": "SecurityContext"}),
    "SecurityContext": ("core", "Security options a container runs with (enforced by meshd's Docker driver).", {
        "runAsUser": "integer", "runAsGroup": "integer", "runAsNonRoot": "boolean",
        "readOnlyRootFilesystem": "boolean", "allowPrivilegeEscalation": "boolean", "privileged": "boolean",
        "capabilities": "Capabilities"}),
    "Capabilities": ("core", "POSIX capabilities added to or dropped from a container.", {
        "add": "[string]", "drop": "[string]"}),
    "PodSecurityContext": ("core", "Security options for every container of a pod, and its groups.", {
        "runAsUser": "integer", "runAsGroup": "integer", "runAsNonRoot": "boolean", "fsGroup": "integer",
        "supplementalGroups": "[integer]"}),
    "ContainerPort": ("core", "A network port in a single container.", {
        "name": "string", "containerPort": "integer", "protocol": "string", "hostPort": "integer",
        "hostIP": "string"}),
    "EnvVar": ("core", "An environment variable present in a container.", {
        "name": "string", "value": "string", "valueFrom": "EnvVarSource"}),
    "EnvVarSource": ("core", "A source for the value of an EnvVar.", {
        "fieldRef": "ObjectFieldSelector", "resourceFieldRef": "ResourceFieldSelector"}),
    "ObjectFieldSelector": ("core", "Selects a field of the pod.", {"apiVersion": "string",
                                                                    "fieldPath": "string"}),
    "ResourceFieldSelector": ("core", "Selects a resource of a container.", {
        "containerName": "string", "resource": "string", "divisor": "quantity"}),
    "ResourceRequirements": ("core", "Compute resource requirements.", {
        "limits": "{quantity}", "requests": "{quantity}"}),
    "VolumeMount": ("core", "A mounting of a volume within a container.", {
        "name": "string", "mountPath": "string", "readOnly": "boolean", "subPath": "string"}),
    "Volume": ("core", "A named volume in a pod.", {"name": "string", "emptyDir": "EmptyDirVolumeSource",
                                                    **STORAGE_VOLUME_FIELDS}),
    "EmptyDirVolumeSource": ("core", "A temporary directory that shares a pod's lifetime.", {
        "medium": "string", "sizeLimit": "quantity"}),
    "Probe": ("core", "A health check performed against a container.", {
        "httpGet": "HTTPGetAction", "tcpSocket": "TCPSocketAction", "exec": "ExecAction",
        "grpc": "GRPCAction", "initialDelaySeconds": "integer", "periodSeconds": "number",
        "timeoutSeconds": "number", "successThreshold": "integer", "failureThreshold": "integer",
        "terminationGracePeriodSeconds": "integer"}),
    "HTTPGetAction": ("core", "An action based on HTTP Get requests.", {
        "path": "string", "port": "int-or-string", "host": "string", "scheme": "string",
        "httpHeaders": "[HTTPHeader]"}),
    "HTTPHeader": ("core", "A custom header to be used in HTTP probes.", {"name": "string", "value": "string"}),
    "TCPSocketAction": ("core", "An action based on opening a socket.", {"port": "int-or-string"}),
    "ExecAction": ("core", "A \"run in container\" action.", {"command": "[string]"}),
    "GRPCAction": ("core", "A gRPC health check.", {"port": "integer", "service": "string"}),
    "Lifecycle": ("core", "Actions the system takes in response to container lifecycle events.", {
        "preStop": "LifecycleHandler"}),
    "LifecycleHandler": ("core", "A specific action to take in a lifecycle hook.", {
        "exec": "ExecAction", "sleep": "SleepAction"}),
    "SleepAction": ("core", "Sleeps for a duration.", {"seconds": "integer"}),
    "ContainerStatus": ("core", "The current status of a container.", {
        "name": "string", "image": "string", "imageID": "string", "containerID": "string", "ready": "boolean",
        "started": "boolean", "restartCount": "integer", "state": "ContainerState",
        "lastState": "ContainerState"}),
    "ContainerState": ("core", "A possible state of a container.", {
        "waiting": "ContainerStateWaiting", "running": "ContainerStateRunning",
        "terminated": "ContainerStateTerminated"}),
    "ContainerStateWaiting": ("core", "A waiting container.", {"reason": "string", "message": "string"}),
    "ContainerStateRunning": ("core", "A running container.", {"startedAt": "time"}),
    "ContainerStateTerminated": ("core", "A terminated container.", {
        "exitCode": "integer", "signal": "integer", "reason": "string", "message": "string",
        "startedAt": "time", "finishedAt": "time"}),
    "PodTemplateSpec": ("core", "The pods a controller creates.", {"metadata": "ObjectMeta", "spec": "PodSpec"}),
    "Service": ("core", "A named port the proxy balances over the pods its selector picks.", {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta", "spec": "ServiceSpec",
        "status": "ServiceStatus"}),
    "ServiceSpec": ("core", "The attributes a user creates on a service.", {
        "selector": "{string}", "ports": "[ServicePort]", "type": "string", "clusterIP": "string",
        "clusterIPs": "[string]", "externalName": "string", "externalIPs": "[string]",
        "publishNotReadyAddresses": "boolean",
        "externalTrafficPolicy": "string", "allocateLoadBalancerNodePorts": "boolean",
        "loadBalancerSourceRanges": "[string]", "loadBalancerIP": "string"}),
    "ServicePort": ("core", "A port of a service.", {
        "name": "string", "port": "integer", "targetPort": "int-or-string", "protocol": "string",
        "nodePort": "integer", "appProtocol": "string"}),
    "ServiceStatus": ("core", "The current status of a service.", {"loadBalancer": "object"}),
    "Endpoints": ("core", "The addresses that implement a service.", {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta", "subsets": "[EndpointSubset]"}),
    "EndpointSubset": ("core", "A group of addresses with a common set of ports.", {
        "addresses": "[EndpointAddress]", "notReadyAddresses": "[EndpointAddress]", "ports": "[EndpointPort]"}),
    "EndpointAddress": ("core", "A single IP address.", {
        "ip": "string", "hostname": "string", "nodeName": "string", "targetRef": "ObjectReference"}),
    "EndpointPort": ("core", "A port number of an endpoint.", {
        "name": "string", "port": "integer", "protocol": "string"}),
    "ObjectReference": ("core", "A reference to an object.", {
        "apiVersion": "string", "kind": "string", "namespace": "string", "name": "string", "uid": "string",
        "resourceVersion": "string", "fieldPath": "string"}),
    "Event": ("core", "A report of an event somewhere in the cluster.", {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta", "involvedObject": "ObjectReference",
        "type": "string", "reason": "string", "message": "string", "count": "integer",
        "firstTimestamp": "time", "lastTimestamp": "time", "source": "EventSource"}),
    "EventSource": ("core", "The component reporting an event.", {"component": "string", "host": "string"}),
    "events.Event": ("events", "A report of an event somewhere in the cluster (events.k8s.io).", {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta", "eventTime": "time",
        "regarding": "ObjectReference", "related": "ObjectReference", "note": "string", "reason": "string",
        "type": "string", "action": "string", "reportingController": "string", "reportingInstance": "string",
        "deprecatedSource": "EventSource", "deprecatedFirstTimestamp": "time", "deprecatedLastTimestamp": "time",
        "deprecatedCount": "integer"}),
    "Namespace": ("core", "Namespace provides a scope for names.", {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta", "spec": "NamespaceSpec",
        "status": "NamespaceStatus"}),
    "NamespaceSpec": ("core", "The attributes of a namespace.", {"finalizers": "[string]"}),
    "NamespaceStatus": ("core", "The status of a namespace.", {"phase": "string"}),
    "Node": ("core", "Node is a worker; meshd's is the machine its agent runs on.", {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta", "spec": "NodeSpec",
        "status": "NodeStatus"}),
    "NodeSpec": ("core", "The attributes of a node.", {"unschedulable": "boolean"}),
    "NodeStatus": ("core", "The most recently observed status of the node.", {
        "capacity": "{quantity}", "allocatable": "{quantity}", "conditions": "[NodeCondition]",
        "addresses": "[NodeAddress]", "nodeInfo": "NodeSystemInfo"}),
    "NodeCondition": ("core", "A condition of a node.", {
        "type": "string", "status": "string", "reason": "string", "message": "string",
        "lastHeartbeatTime": "time", "lastTransitionTime": "time"}),
    "NodeAddress": ("core", "An address of a node.", {"type": "string", "address": "string"}),
    "NodeSystemInfo": ("core", "Information about the node.", {
        "kubeletVersion": "string", "kubeProxyVersion": "string", "operatingSystem": "string",
        "architecture": "string", "kernelVersion": "string", "osImage": "string",
        "containerRuntimeVersion": "string"}),
    "ConfigMap": ("core", "ConfigMap holds configuration data for pods to consume.", {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta", "data": "{string}",
        "binaryData": "{string}", "immutable": "boolean"}),
    "Secret": ("core", "Secret holds secret data of a certain type.", {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta", "data": "{string}",
        "stringData": "{string}", "type": "string", "immutable": "boolean"}),
    "Deployment": ("apps", "Deployment enables declarative updates for Pods and ReplicaSets.", {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta", "spec": "DeploymentSpec",
        "status": "DeploymentStatus"}),
    "DeploymentSpec": ("apps", "The specification of the desired behavior of the Deployment.", {
        "replicas": "integer", "selector": "LabelSelector", "template": "PodTemplateSpec",
        "strategy": "DeploymentStrategy", "minReadySeconds": "integer", "revisionHistoryLimit": "integer",
        "paused": "boolean", "progressDeadlineSeconds": "integer"}),
    "DeploymentStrategy": ("apps", "How to replace existing pods with new ones.", {
        "type": "string", "rollingUpdate": "RollingUpdateDeployment"}),
    "RollingUpdateDeployment": ("apps", "The parameters of a rolling update.", {
        "maxSurge": "int-or-string", "maxUnavailable": "int-or-string"}),
    "DeploymentStatus": ("apps", "The most recently observed status of the Deployment.", {
        "observedGeneration": "integer", "replicas": "integer", "updatedReplicas": "integer",
        "readyReplicas": "integer", "availableReplicas": "integer", "unavailableReplicas": "integer",
        "conditions": "[DeploymentCondition]"}),
    "DeploymentCondition": ("apps", "The state of a deployment at a point in time.", {
        "type": "string", "status": "string", "reason": "string", "message": "string",
        "lastUpdateTime": "time", "lastTransitionTime": "time"}),
    "StatefulSet": ("apps", "StatefulSet represents a set of pods with consistent identities.", {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta", "spec": "StatefulSetSpec",
        "status": "StatefulSetStatus"}),
    "StatefulSetSpec": ("apps", "A specification of a StatefulSet.", {
        "replicas": "integer", "selector": "LabelSelector", "template": "PodTemplateSpec", "serviceName": "string",
        "podManagementPolicy": "string", "updateStrategy": "StatefulSetUpdateStrategy",
        "volumeClaimTemplates": "[object]", "minReadySeconds": "integer", "revisionHistoryLimit": "integer",
        "persistentVolumeClaimRetentionPolicy": "object"}),
    "StatefulSetUpdateStrategy": ("apps", "How the StatefulSet controller performs updates.", {
        "type": "string", "rollingUpdate": "RollingUpdateStatefulSetStrategy"}),
    "RollingUpdateStatefulSetStrategy": ("apps", "The parameters of a StatefulSet's RollingUpdate.", {
        "partition": "integer"}),
    "StatefulSetStatus": ("apps", "The current status of a StatefulSet.", {
        "observedGeneration": "integer", "replicas": "integer", "readyReplicas": "integer",
        "currentReplicas": "integer", "updatedReplicas": "integer", "availableReplicas": "integer",
        "currentRevision": "string", "updateRevision": "string", "collisionCount": "integer"}),
    "DaemonSet": ("apps", "DaemonSet represents the configuration of a daemon set.", {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta", "spec": "DaemonSetSpec",
        "status": "DaemonSetStatus"}),
    "DaemonSetSpec": ("apps", "The specification of a daemon set.", {
        "selector": "LabelSelector", "template": "PodTemplateSpec", "updateStrategy": "DaemonSetUpdateStrategy",
        "minReadySeconds": "integer", "revisionHistoryLimit": "integer"}),
    "DaemonSetUpdateStrategy": ("apps", "How the DaemonSet controller replaces its pods.", {
        "type": "string", "rollingUpdate": "RollingUpdateDaemonSet"}),
    "RollingUpdateDaemonSet": ("apps", "The parameters of a DaemonSet's RollingUpdate.", {
        "maxUnavailable": "int-or-string", "maxSurge": "int-or-string"}),
    "DaemonSetStatus": ("apps", "The current status of a daemon set.", {
        "currentNumberScheduled": "integer", "desiredNumberScheduled": "integer", "numberAvailable": "integer",
        "numberMisscheduled": "integer", "numberReady": "integer", "numberUnavailable": "integer",
        "observedGeneration": "integer", "updatedNumberScheduled": "integer"}),
    "ReplicaSet": ("apps", "ReplicaSet ensures that a specified number of pod replicas are running.", {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta", "spec": "ReplicaSetSpec",
        "status": "ReplicaSetStatus"}),
    "ReplicaSetSpec": ("apps", "The specification of a ReplicaSet.", {
        "replicas": "integer", "selector": "LabelSelector", "template": "PodTemplateSpec",
        "minReadySeconds": "integer"}),
    **STORAGE_TYPES,
    **SCHEDULING_TYPES,
    "ReplicaSetStatus": ("apps", "The most recently observed status of a ReplicaSet.", {
        "replicas": "integer", "fullyLabeledReplicas": "integer", "readyReplicas": "integer",
        "availableReplicas": "integer", "observedGeneration": "integer"}),
    "Job": ("batch", "Job represents the configuration of a single job.", {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta", "spec": "JobSpec", "status": "JobStatus"}),
    "JobSpec": ("batch", "The specification of a job.", {
        "completions": "integer", "parallelism": "integer", "backoffLimit": "integer",
        "activeDeadlineSeconds": "integer", "ttlSecondsAfterFinished": "integer", "completionMode": "string",
        "suspend": "boolean", "selector": "LabelSelector", "manualSelector": "boolean",
        "template": "PodTemplateSpec"}),
    "JobStatus": ("batch", "The current state of a Job.", {
        "active": "integer", "succeeded": "integer", "failed": "integer", "ready": "integer",
        "terminating": "integer", "startTime": "time", "completionTime": "time", "completedIndexes": "string",
        "conditions": "[JobCondition]", "uncountedTerminatedPods": "object"}),
    "JobCondition": ("batch", "A condition of a job.", {
        "type": "string", "status": "string", "reason": "string", "message": "string", "lastProbeTime": "time",
        "lastTransitionTime": "time"}),
    "CronJob": ("batch", "CronJob represents the configuration of a single cron job.", {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta", "spec": "CronJobSpec",
        "status": "CronJobStatus"}),
    "CronJobSpec": ("batch", "The specification of a cron job: its schedule and the job it runs.", {
        "schedule": "string", "timeZone": "string", "concurrencyPolicy": "string",
        "startingDeadlineSeconds": "integer", "suspend": "boolean", "successfulJobsHistoryLimit": "integer",
        "failedJobsHistoryLimit": "integer", "jobTemplate": "JobTemplateSpec"}),
    "JobTemplateSpec": ("batch", "The Job a CronJob creates at each scheduled time.", {
        "metadata": "ObjectMeta", "spec": "JobSpec"}),
    "CronJobStatus": ("batch", "The current state of a cron job.", {
        "active": "[ObjectReference]", "lastScheduleTime": "time", "lastSuccessfulTime": "time"}),
}
PACKAGES = {"meta": "io.k8s.apimachinery.pkg.apis.meta.v1", "core": "io.k8s.api.core.v1",
            "apps": "io.k8s.api.apps.v1", "storage": "io.k8s.api.storage.v1", "networking": "io.k8s.api.networking.v1",
            "batch": "io.k8s.api.batch.v1", "events": "io.k8s.api.events.v1",
            "discovery": "io.k8s.api.discovery.v1"}
TYPES.update(OPENAPI_TYPES)
TYPES.update(endpointslices.OPENAPI_TYPES)
TYPES.update(keptschema.TYPES)
PACKAGES.update(keptschema.PACKAGES)
SCALARS: dict[str, dict[str, Any]] = {
    "string": {"type": "string"}, "integer": {"type": "integer", "format": "int64"},
    "number": {"type": "number", "format": "double"}, "boolean": {"type": "boolean"},
    "time": {"type": "string", "format": "date-time"}, "quantity": {"type": "string"},
    "int-or-string": {"type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": True},
    "object": {"type": "object"},
}


def definition_name(name: str) -> str:
    """"Pod" -> "io.k8s.api.core.v1.Pod" (the names the Kubernetes OpenAPI documents use)."""
    return f"{PACKAGES[TYPES[name][0]]}.{name.rpartition('.')[2]}"


def _field(spec: str, ref_prefix: str) -> dict[str, Any]:
    if spec.startswith("["):
        return {"type": "array", "items": _field(spec[1:-1], ref_prefix)}
    if spec.startswith("{"):
        return {"type": "object", "additionalProperties": _field(spec[1:-1], ref_prefix)}
    if spec in SCALARS:
        return dict(SCALARS[spec])
    return {"$ref": ref_prefix + definition_name(spec)}


def _described(schema: dict[str, Any], text: str | None, *, v3: bool) -> dict[str, Any]:
    """A property's schema with its description. OpenAPI 3.0 ignores the siblings of a $ref, so there (as the
    Kubernetes documents do) a reference is wrapped in allOf and the description sits beside it."""
    if not text:
        return schema
    if v3 and "$ref" in schema:
        return {"allOf": [schema], "description": text}
    return {**schema, "description": text}


def _property_descriptions(name: str) -> dict[str, str]:
    """The descriptions of a type's fields: its own, and for a kind, those of its top-level fields."""
    kind = name.rpartition(".")[2]
    top = {f: text.format(kind=kind) for f, text in descriptions.OBJECT_FIELDS.items()} if _gvk(name) else {}
    return {**top, **descriptions.FIELDS.get(name, {})}


def _gvk(name: str) -> list[dict[str, str]] | None:
    kind = name.rpartition(".")[2]
    qualified = QUALIFIED.get(name.removesuffix("List"))
    for k in [qualified] if qualified else [k for k in SERVED if k not in QUALIFIED.values()]:
        if kind in (k.kind, k.kind + "List"):
            return [{"group": k.group, "version": k.version, "kind": kind}]
    return None


def _type_name(k: Kind) -> str:
    """A kind's name in the types table ("Pod", "events.Event")."""
    return next((name for name, kind in QUALIFIED.items() if kind == k), k.kind)


def definitions(ref_prefix: str) -> dict[str, dict[str, Any]]:
    """Every type of the table, its kinds' List types, as schemas whose references start with ref_prefix."""
    out: dict[str, dict[str, Any]] = {}
    v3 = ref_prefix.startswith("#/components/")
    for name, (_, description, fields) in TYPES.items():
        said = _property_descriptions(name)
        schema: dict[str, Any] = {
            "description": descriptions.TYPES.get(name, description), "type": "object",
            "properties": {f: _described(_field(t, ref_prefix), said.get(f), v3=v3) for f, t in fields.items()}}
        gvk = _gvk(name)
        if gvk:
            schema["x-kubernetes-group-version-kind"] = gvk
            list_gvk = _gvk(name + "List")
            out[definition_name(name) + "List"] = {
                "description": f"A list of {name} objects.", "type": "object", "required": ["items"],
                "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                               "metadata": _field("ListMeta", ref_prefix), "items": _field(f"[{name}]", ref_prefix)},
                "x-kubernetes-group-version-kind": list_gvk,
            }
        out[definition_name(name)] = schema
    return out


# the operations of a collection and of one object: (HTTP method, kubectl's verb, action, on the object?)
_OPERATIONS = (("get", "list", "list", False), ("post", "create", "post", False), ("delete", "deletecollection",
               "deletecollection", False), ("get", "get", "get", True), ("put", "update", "put", True),
               ("patch", "patch", "patch", True), ("delete", "delete", "delete", True))
_WRITE_PARAMETERS = [{"name": name, "in": "query", "type": "string", "uniqueItems": True}
                     for name in ("dryRun", "fieldManager", "fieldValidation")]


def _paths(group: str | None, version: str | None, ref_prefix: str, *, v3: bool) -> dict[str, Any]:
    """The paths of each kind, with an operation for each verb the kind has (Kind.verbs) and nothing more: a
    client that finds PATCH documented with `fieldValidation` lets the server validate (kubectl apply)."""
    paths: dict[str, Any] = {}
    for k in SERVED:
        if group is not None and (k.group, k.version) != (group, version):
            continue
        gvk = {"group": k.group, "version": k.version, "kind": k.kind}
        for method, verb, action, on_object in _OPERATIONS:
            if verb not in k.verbs:
                continue
            collection = k.collection_path("{namespace}" if k.namespaced else None)
            path = collection + "/{name}" if on_object else collection
            path = path.replace("%7B", "{").replace("%7D", "}")
            schema = {"$ref": ref_prefix + definition_name(_type_name(k)) + ("" if on_object else "List")}
            answer = ({"content": {"application/json": {"schema": schema}}, "description": "OK"} if v3
                      else {"schema": schema, "description": "OK"})
            operation: dict[str, Any] = {"operationId": f"{verb}{k.kind}", "responses": {"200": answer},
                                         "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk}
            if method in ("post", "put", "patch"):
                operation["parameters"] = [
                    {k2: v for k2, v in p.items() if not v3 or k2 not in ("type", "uniqueItems")}
                    | ({"schema": {"type": "string", "uniqueItems": True}} if v3 else {})
                    for p in _WRITE_PARAMETERS]
            paths.setdefault(path, {})[method] = operation
    return paths


def _info() -> dict[str, str]:
    return {"title": "Kubernetes", "version": f"v{KUBE_MAJOR}.{KUBE_MINOR}.0-meshd"}


@cache
def swagger() -> dict[str, Any]:
    """`/openapi/v2`: a swagger 2.0 document of every kind meshd serves."""
    prefix = "#/definitions/"
    return {"swagger": "2.0", "info": _info(), "paths": _paths(None, None, prefix, v3=False),
            "definitions": definitions(prefix)}


def _protobuf_field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (wire type 2); every field below is one."""
    size, length = bytearray(), len(payload)
    while True:
        size.append((length & 0x7F) | (0x80 if length > 0x7F else 0))
        length >>= 7
        if not length:
            break
    return bytes([number << 3 | 2]) + bytes(size) + payload


SWAGGER_PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"  # what client-go asks for
SWAGGER_PROTOBUF_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"  # what the API server answers


@cache
def swagger_protobuf() -> bytes:
    """`/openapi/v2` as client-go asks for it (gnostic's openapi_v2.Document, protobuf only): swagger, info and
    empty paths and definitions. kubectl validates with the v3 documents; it reads v2 only for a kind they do not
    describe, and a v2 document without that kind lets the apply go on to the server's own error (`no matches for
    kind`), as with a real API server."""
    info = _info()
    return (_protobuf_field(1, b"2.0")
            + _protobuf_field(2, _protobuf_field(1, info["title"].encode()) + _protobuf_field(2, info["version"].encode()))
            + _protobuf_field(8, b"") + _protobuf_field(9, b""))


def _v3_paths() -> list[str]:
    return [f"apis/{g}/{v}" if g else f"api/{v}" for g, versions in group_versions(SERVED).items() for v in versions]


@cache
def v3_document(path: str) -> dict[str, Any] | None:
    """`/openapi/v3/api/v1`, `/openapi/v3/apis/apps/v1`: an OpenAPI 3.0 document of one group version."""
    if path not in _v3_paths():
        return None
    parts = path.split("/")
    group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
    prefix = "#/components/schemas/"
    return {"openapi": "3.0.0", "info": _info(), "paths": _paths(group, version, prefix, v3=True),
            "components": {"schemas": definitions(prefix)}}


@cache
def v3_index() -> dict[str, Any]:
    """`/openapi/v3`: each group version's document and a hash of it (clients cache by that URL)."""
    paths = {}
    for path in _v3_paths():
        digest = hashlib.sha512(json.dumps(v3_document(path), sort_keys=True).encode()).hexdigest()[:32].upper()
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


__all__ = ["SWAGGER_PROTOBUF", "SWAGGER_PROTOBUF_TYPE", "definitions", "swagger", "swagger_protobuf", "v3_document", "v3_index"]

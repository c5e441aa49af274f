"""The protobuf field numbers of the Kubernetes messages kubectl's generators send (`kubectl create deployment|job|
cronjob|service|ingress`, `kubectl run`), from k8s.io/api's generated.proto, and a decoder that turns such a
message into the JSON shape the API takes. Pure.

A field is (JSON name, type, flags). Types: "string", "int", "bool", "intstr" (IntOrString), "quantity", "skip"
(read and dropped: a timestamp the server sets), "map" (string to string), "map:quantity", or a message name.
Flags: "r" repeated; "p" a pointer in Go (kept when zero, false or empty: `replicas: 0`, `emptyDir: {}`);
"i" inline (its fields belong to the parent in JSON: a Volume's VolumeSource, an IngressRule's value).
Go's proto2 encoding writes every non-pointer field, so empty strings, zeros and empty structs are left out, as
`omitempty` leaves them out of JSON. A field not in the table whose value is not empty is an error: meshd never
drops what a client asked for."""

from __future__ import annotations

from typing import Any

from meshd.model.protowire import fields

Field = tuple[str, str, str]

_META: dict[int, Field] = {
    1: ("name", "string", ""), 2: ("generateName", "string", ""), 3: ("namespace", "string", ""),
    6: ("resourceVersion", "string", ""), 8: ("creationTimestamp", "skip", ""),
    11: ("labels", "map", ""), 12: ("annotations", "map", ""), 13: ("ownerReferences", "OwnerReference", "r"),
    14: ("finalizers", "string", "r"),
}

SCHEMA: dict[str, dict[int, Field]] = {
    "ObjectMeta": _META,
    "OwnerReference": {1: ("kind", "string", ""), 3: ("name", "string", ""), 4: ("uid", "string", ""),
                       5: ("apiVersion", "string", ""), 6: ("controller", "bool", "p"),
                       7: ("blockOwnerDeletion", "bool", "p")},
    "LabelSelector": {1: ("matchLabels", "map", ""), 2: ("matchExpressions", "LabelSelectorRequirement", "r")},
    "LabelSelectorRequirement": {1: ("key", "string", ""), 2: ("operator", "string", ""),
                                 3: ("values", "string", "r")},
    # core/v1
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "PodSpec", "")},
    "PodSpec": {
        1: ("volumes", "Volume", "r"), 2: ("containers", "Container", "r"), 3: ("restartPolicy", "string", ""),
        4: ("terminationGracePeriodSeconds", "int", "p"), 5: ("activeDeadlineSeconds", "int", "p"),
        6: ("dnsPolicy", "string", ""), 7: ("nodeSelector", "map", ""), 8: ("serviceAccountName", "string", ""),
        9: ("serviceAccount", "string", ""), 10: ("nodeName", "string", ""), 16: ("hostname", "string", ""),
        17: ("subdomain", "string", ""), 19: ("schedulerName", "string", ""),
        20: ("initContainers", "Container", "r"), 15: ("imagePullSecrets", "LocalObjectReference", "r"),
        22: ("tolerations", "Toleration", "r"), 24: ("priorityClassName", "string", ""),
        30: ("enableServiceLinks", "bool", "p"),
    },
    "LocalObjectReference": {1: ("name", "string", "")},
    "Toleration": {1: ("key", "string", ""), 2: ("operator", "string", ""), 3: ("value", "string", ""),
                   4: ("effect", "string", ""), 5: ("tolerationSeconds", "int", "p")},
    "Container": {
        1: ("name", "string", ""), 2: ("image", "string", ""), 3: ("command", "string", "r"),
        4: ("args", "string", "r"), 5: ("workingDir", "string", ""), 6: ("ports", "ContainerPort", "r"),
        7: ("env", "EnvVar", "r"), 8: ("resources", "ResourceRequirements", ""),
        9: ("volumeMounts", "VolumeMount", "r"), 10: ("livenessProbe", "Probe", "p"),
        11: ("readinessProbe", "Probe", "p"), 13: ("terminationMessagePath", "string", ""),
        14: ("imagePullPolicy", "string", ""), 16: ("stdin", "bool", ""), 17: ("stdinOnce", "bool", ""),
        18: ("tty", "bool", ""), 19: ("envFrom", "EnvFromSource", "r"),
        20: ("terminationMessagePolicy", "string", ""), 22: ("startupProbe", "Probe", "p"),
        24: ("restartPolicy", "string", "p"),
    },
    "ContainerPort": {1: ("name", "string", ""), 2: ("hostPort", "int", ""), 3: ("containerPort", "int", ""),
                      4: ("protocol", "string", ""), 5: ("hostIP", "string", "")},
    "EnvVar": {1: ("name", "string", ""), 2: ("value", "string", ""), 3: ("valueFrom", "EnvVarSource", "p")},
    "EnvVarSource": {1: ("fieldRef", "ObjectFieldSelector", "p"), 3: ("configMapKeyRef", "KeySelector", "p"),
                     4: ("secretKeyRef", "KeySelector", "p")},
    "ObjectFieldSelector": {1: ("apiVersion", "string", ""), 2: ("fieldPath", "string", "")},
    "KeySelector": {1: ("localObjectReference", "LocalObjectReference", "i"), 2: ("key", "string", ""),
                    3: ("optional", "bool", "p")},
    "EnvFromSource": {1: ("prefix", "string", ""), 2: ("configMapRef", "EnvFromReference", "p"),
                      3: ("secretRef", "EnvFromReference", "p")},
    "EnvFromReference": {1: ("localObjectReference", "LocalObjectReference", "i"), 2: ("optional", "bool", "p")},
    "ResourceRequirements": {1: ("limits", "map:quantity", ""), 2: ("requests", "map:quantity", "")},
    "VolumeMount": {1: ("name", "string", ""), 2: ("readOnly", "bool", ""), 3: ("mountPath", "string", ""),
                    4: ("subPath", "string", "")},
    "Volume": {1: ("name", "string", ""), 2: ("volumeSource", "VolumeSource", "i")},
    "VolumeSource": {1: ("hostPath", "HostPathVolumeSource", "p"), 2: ("emptyDir", "EmptyDirVolumeSource", "p"),
                     6: ("secret", "SecretVolumeSource", "p"),
                     10: ("persistentVolumeClaim", "PersistentVolumeClaimVolumeSource", "p"),
                     19: ("configMap", "ConfigMapVolumeSource", "p")},
    "HostPathVolumeSource": {1: ("path", "string", ""), 2: ("type", "string", "p")},
    "EmptyDirVolumeSource": {1: ("medium", "string", ""), 2: ("sizeLimit", "quantity", "p")},
    "SecretVolumeSource": {1: ("secretName", "string", ""), 2: ("items", "KeyToPath", "r"),
                           3: ("defaultMode", "int", "p"), 4: ("optional", "bool", "p")},
    "ConfigMapVolumeSource": {1: ("localObjectReference", "LocalObjectReference", "i"),
                              2: ("items", "KeyToPath", "r"), 3: ("defaultMode", "int", "p"),
                              4: ("optional", "bool", "p")},
    "KeyToPath": {1: ("key", "string", ""), 2: ("path", "string", ""), 3: ("mode", "int", "p")},
    "PersistentVolumeClaimVolumeSource": {1: ("claimName", "string", ""), 2: ("readOnly", "bool", "")},
    "Probe": {1: ("handler", "ProbeHandler", "i"), 2: ("initialDelaySeconds", "int", ""),
              3: ("timeoutSeconds", "int", ""), 4: ("periodSeconds", "int", ""),
              5: ("successThreshold", "int", ""), 6: ("failureThreshold", "int", ""),
              7: ("terminationGracePeriodSeconds", "int", "p")},
    "ProbeHandler": {1: ("exec", "ExecAction", "p"), 2: ("httpGet", "HTTPGetAction", "p"),
                     3: ("tcpSocket", "TCPSocketAction", "p"), 4: ("grpc", "GRPCAction", "p")},
    "ExecAction": {1: ("command", "string", "r")},
    "HTTPGetAction": {1: ("path", "string", ""), 2: ("port", "intstr", ""), 3: ("host", "string", ""),
                      4: ("scheme", "string", ""), 5: ("httpHeaders", "HTTPHeader", "r")},
    "HTTPHeader": {1: ("name", "string", ""), 2: ("value", "string", "")},
    "TCPSocketAction": {1: ("port", "intstr", ""), 2: ("host", "string", "")},
    "GRPCAction": {1: ("port", "int", ""), 2: ("service", "string", "p")},
    "ServiceSpec": {
        1: ("ports", "ServicePort", "r"), 2: ("selector", "map", ""), 3: ("clusterIP", "string", ""),
        4: ("type", "string", ""), 7: ("sessionAffinity", "string", ""), 10: ("externalName", "string", ""),
        11: ("externalTrafficPolicy", "string", ""), 13: ("publishNotReadyAddresses", "bool", ""),
        18: ("clusterIPs", "string", "r"), 20: ("allocateLoadBalancerNodePorts", "bool", "p"),
        22: ("internalTrafficPolicy", "string", "p"),
    },
    "ServicePort": {1: ("name", "string", ""), 2: ("protocol", "string", ""), 3: ("port", "int", ""),
                    4: ("targetPort", "intstr", ""), 5: ("nodePort", "int", ""), 6: ("appProtocol", "string", "p")},
    # apps/v1
    "DeploymentSpec": {1: ("replicas", "int", "p"), 2: ("selector", "LabelSelector", "p"),
                       3: ("template", "PodTemplateSpec", ""), 4: ("strategy", "DeploymentStrategy", ""),
                       5: ("minReadySeconds", "int", ""), 6: ("revisionHistoryLimit", "int", "p"),
                       7: ("paused", "bool", ""), 9: ("progressDeadlineSeconds", "int", "p")},
    "DeploymentStrategy": {1: ("type", "string", ""), 2: ("rollingUpdate", "RollingUpdateDeployment", "p")},
    "RollingUpdateDeployment": {1: ("maxUnavailable", "intstr", "p"), 2: ("maxSurge", "intstr", "p")},
    # batch/v1
    "JobSpec": {1: ("parallelism", "int", "p"), 2: ("completions", "int", "p"),
                3: ("activeDeadlineSeconds", "int", "p"), 4: ("selector", "LabelSelector", "p"),
                6: ("template", "PodTemplateSpec", ""), 7: ("backoffLimit", "int", "p"),
                8: ("ttlSecondsAfterFinished", "int", "p"), 9: ("completionMode", "string", "p"),
                10: ("suspend", "bool", "p")},
    "CronJobSpec": {1: ("schedule", "string", ""), 2: ("startingDeadlineSeconds", "int", "p"),
                    3: ("concurrencyPolicy", "string", ""), 4: ("suspend", "bool", "p"),
                    5: ("jobTemplate", "JobTemplateSpec", ""), 6: ("successfulJobsHistoryLimit", "int", "p"),
                    7: ("failedJobsHistoryLimit", "int", "p"), 8: ("timeZone", "string", "p")},
    "JobTemplateSpec": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "JobSpec", "")},
    # networking.k8s.io/v1
    "IngressSpec": {1: ("defaultBackend", "IngressBackend", "p"), 2: ("tls", "IngressTLS", "r"),
                    3: ("rules", "IngressRule", "r"), 4: ("ingressClassName", "string", "p")},
    "IngressTLS": {1: ("hosts", "string", "r"), 2: ("secretName", "string", "")},
    "IngressRule": {1: ("host", "string", ""), 2: ("ingressRuleValue", "IngressRuleValue", "i")},
    "IngressRuleValue": {1: ("http", "HTTPIngressRuleValue", "p")},
    "HTTPIngressRuleValue": {1: ("paths", "HTTPIngressPath", "r")},
    "HTTPIngressPath": {1: ("path", "string", ""), 2: ("backend", "IngressBackend", ""),
                        3: ("pathType", "string", "p")},
    "IngressBackend": {4: ("service", "IngressServiceBackend", "p")},
    "IngressServiceBackend": {1: ("name", "string", ""), 2: ("port", "ServiceBackendPort", "")},
    "ServiceBackendPort": {1: ("name", "string", ""), 2: ("number", "int", "")},
}

# The top-level object of each kind: metadata 1, spec 2 (status 3 is the server's and dropped).
# the kinds meshd keeps without acting on them (meshd.model.kept) that `kubectl create` makes: the whole object
# (its metadata, field 1, read by meshd.api.protobuf; status skipped: the server's)
_RULE = {1: ("verbs", "string", "r"), 2: ("apiGroups", "string", "r"), 3: ("resources", "string", "r"),
         4: ("resourceNames", "string", "r"), 5: ("nonResourceURLs", "string", "r")}
_BINDING = {1: ("metadata", "skip", ""), 2: ("subjects", "Subject", "r"), 3: ("roleRef", "RoleRef", "")}
SCHEMA.update({
    "ObjectReference": {1: ("kind", "string", ""), 2: ("namespace", "string", ""), 3: ("name", "string", ""),
                        4: ("uid", "string", ""), 5: ("apiVersion", "string", ""),
                        6: ("resourceVersion", "string", ""), 7: ("fieldPath", "string", "")},
    "ServiceAccount": {1: ("metadata", "skip", ""), 2: ("secrets", "ObjectReference", "r"),
                       3: ("imagePullSecrets", "LocalObjectReference", "r"),
                       4: ("automountServiceAccountToken", "bool", "p")},
    "PolicyRule": _RULE,
    "Role": {1: ("metadata", "skip", ""), 2: ("rules", "PolicyRule", "r")},
    "AggregationRule": {1: ("clusterRoleSelectors", "LabelSelector", "r")},
    "ClusterRole": {1: ("metadata", "skip", ""), 2: ("rules", "PolicyRule", "r"),
                    3: ("aggregationRule", "AggregationRule", "p")},
    "Subject": {1: ("kind", "string", ""), 2: ("apiGroup", "string", ""), 3: ("name", "string", ""),
                4: ("namespace", "string", "")},
    "RoleRef": {1: ("apiGroup", "string", ""), 2: ("kind", "string", ""), 3: ("name", "string", "")},
    "RoleBinding": _BINDING,
    "ClusterRoleBinding": _BINDING,
    "ResourceQuota": {1: ("metadata", "skip", ""), 2: ("spec", "ResourceQuotaSpec", ""), 3: ("status", "skip", "")},
    "ResourceQuotaSpec": {1: ("hard", "map:quantity", ""), 2: ("scopes", "string", "r"),
                          3: ("scopeSelector", "ScopeSelector", "p")},
    "ScopeSelector": {1: ("matchExpressions", "ScopedResourceSelectorRequirement", "r")},
    "ScopedResourceSelectorRequirement": {1: ("scopeName", "string", ""), 2: ("operator", "string", ""),
                                          3: ("values", "string", "r")},
    "PodDisruptionBudget": {1: ("metadata", "skip", ""), 2: ("spec", "PodDisruptionBudgetSpec", ""),
                            3: ("status", "skip", "")},
    "PodDisruptionBudgetSpec": {1: ("minAvailable", "intstr", "p"), 2: ("selector", "LabelSelector", "p"),
                                3: ("maxUnavailable", "intstr", "p"), 4: ("unhealthyPodEvictionPolicy", "string", "p")},
    "HorizontalPodAutoscaler": {1: ("metadata", "skip", ""), 2: ("spec", "HorizontalPodAutoscalerSpec", ""),
                                3: ("status", "skip", "")},
    "HorizontalPodAutoscalerSpec": {1: ("scaleTargetRef", "CrossVersionObjectReference", ""),
                                    2: ("minReplicas", "int", "p"), 3: ("maxReplicas", "int", ""),
                                    4: ("metrics", "MetricSpec", "r")},  # (what `kubectl autoscale` sends)
    "CrossVersionObjectReference": {1: ("kind", "string", ""), 2: ("name", "string", ""),
                                    3: ("apiVersion", "string", "")},
    "MetricSpec": {1: ("type", "string", ""), 4: ("resource", "ResourceMetricSource", "p")},
    "ResourceMetricSource": {1: ("name", "string", ""), 2: ("target", "MetricTarget", "")},
    "MetricTarget": {1: ("type", "string", ""), 2: ("value", "quantity", "p"), 3: ("averageValue", "quantity", "p"),
                     4: ("averageUtilization", "int", "p")},
    "PriorityClass": {1: ("metadata", "skip", ""), 2: ("value", "int", "p"), 3: ("globalDefault", "bool", ""),
                      4: ("description", "string", ""), 5: ("preemptionPolicy", "string", "p")},
})
OBJECTS: dict[tuple[str, str], str] = {
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("rbac.authorization.k8s.io/v1", "Role"): "Role",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "ClusterRole",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "ClusterRoleBinding",
    ("v1", "ResourceQuota"): "ResourceQuota",
    ("policy/v1", "PodDisruptionBudget"): "PodDisruptionBudget",
    ("scheduling.k8s.io/v1", "PriorityClass"): "PriorityClass",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "HorizontalPodAutoscaler",
}

SPECS: dict[tuple[str, str], str] = {
    ("apps/v1", "Deployment"): "DeploymentSpec",
    ("batch/v1", "Job"): "JobSpec",
    ("batch/v1", "CronJob"): "CronJobSpec",
    ("v1", "Service"): "ServiceSpec",
    ("v1", "Pod"): "PodSpec",
    ("networking.k8s.io/v1", "Ingress"): "IngressSpec",
}


class SchemaError(ValueError):
    """A field meshd cannot read (not in the table, not empty), or a malformed value."""


def _empty(value: int | bytes) -> bool:
    """Whether an unknown field holds nothing a client set: zero, "", or a message of such fields only."""
    if isinstance(value, int):
        return value == 0
    if not value:
        return True
    try:
        return all(_empty(inner) for _, inner in fields(value))
    except ValueError:
        return False  # not a message: a non-empty string or bytes


def _int(value: int | bytes) -> int:
    if not isinstance(value, int):
        raise SchemaError("expected a varint")
    return value - (1 << 64) if value >= 1 << 63 else value  # negative int32/int64 are 10-byte varints


def _bytes(value: int | bytes) -> bytes:
    if not isinstance(value, bytes):
        raise SchemaError("expected a length-delimited field")
    return value


def _intstr(data: bytes) -> int | str:
    kind, number, text = 0, 0, ""
    for n, v in fields(data):
        if n == 1:
            kind = _int(v)
        elif n == 2:
            number = _int(v)
        elif n == 3:
            text = _bytes(v).decode()
    return text if kind == 1 else number


def _quantity(data: bytes) -> str:
    return next((_bytes(v).decode() for n, v in fields(data) if n == 1), "")


def _entry(data: bytes) -> tuple[str, bytes]:
    key, item = "", b""
    for n, v in fields(data):
        if n == 1:
            key = _bytes(v).decode()
        elif n == 2:
            item = _bytes(v)
    return key, item


def _value(type_: str, raw: int | bytes, path: str) -> Any:
    if type_ == "string":
        return _bytes(raw).decode()
    if type_ == "int":
        return _int(raw)
    if type_ == "bool":
        return bool(_int(raw))
    if type_ == "intstr":
        return _intstr(_bytes(raw))
    if type_ == "quantity":
        return _quantity(_bytes(raw))
    return message(type_, _bytes(raw), path)


def _is_set(value: Any, flags: str) -> bool:
    return "p" in flags or value not in ("", 0, False, {}, None)


def message(name: str, data: bytes, path: str = "") -> dict[str, Any]:
    """One message of the table as a JSON object; SchemaError names the field it cannot read."""
    table = SCHEMA[name]
    out: dict[str, Any] = {}
    for number, raw in fields(data):
        spec = table.get(number)
        where = f"{path}.{spec[0]}" if spec else f"{path} (field {number} of {name})"
        if spec is None:
            if _empty(raw):
                continue
            raise SchemaError(f"{where.lstrip('.')}: meshd does not read this field from protobuf")
        key, type_, flags = spec
        if type_ == "skip":
            continue
        if type_ in ("map", "map:quantity"):
            entry_key, item = _entry(_bytes(raw))
            out.setdefault(key, {})[entry_key] = _quantity(item) if type_ == "map:quantity" else item.decode()
            continue
        value = _value(type_, raw, where)
        if "i" in flags:
            out.update(value)
        elif "r" in flags:
            out.setdefault(key, []).append(value)
        elif _is_set(value, flags):
            out[key] = value
    return out


__all__ = ["OBJECTS", "SCHEMA", "SPECS", "SchemaError", "message"]

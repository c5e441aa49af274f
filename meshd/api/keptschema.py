"""The OpenAPI types of the kinds meshd keeps without acting on them (meshd.model.kept), for `kubectl explain` and
for kubectl's client-side apply (it looks up a kind's schema): the fields Kubernetes documents, their deeper parts
as plain objects. The table's form is meshd.api.openapi's: name -> (package, description, fields)."""

from __future__ import annotations

_OBJECT = {"apiVersion": "string", "kind": "string", "metadata": "ObjectMeta"}
_BINDING = {**_OBJECT, "subjects": "[Subject]", "roleRef": "RoleRef"}

PACKAGES = {"rbac": "io.k8s.api.rbac.v1", "policy": "io.k8s.api.policy.v1", "autoscaling": "io.k8s.api.autoscaling.v2",
            "scheduling": "io.k8s.api.scheduling.v1"}
TYPES: dict[str, tuple[str, str, dict[str, str]]] = {
    "ServiceAccount": ("core", "A ServiceAccount (meshd keeps it; it issues no token for it).", {
        **_OBJECT, "secrets": "[ObjectReference]", "imagePullSecrets": "[LocalObjectReference]",
        "automountServiceAccountToken": "boolean"}),
    "LocalObjectReference": ("core", "A reference to an object by name, in the same namespace.", {"name": "string"}),
    "PolicyRule": ("rbac", "The verbs a rule allows on resources or non-resource URLs.", {
        "verbs": "[string]", "apiGroups": "[string]", "resources": "[string]", "resourceNames": "[string]",
        "nonResourceURLs": "[string]"}),
    "Role": ("rbac", "A namespaced set of rules (meshd keeps it; it does not authorize by RBAC).", {
        **_OBJECT, "rules": "[PolicyRule]"}),
    "ClusterRole": ("rbac", "A cluster-wide set of rules (meshd keeps it; it does not authorize by RBAC).", {
        **_OBJECT, "rules": "[PolicyRule]", "aggregationRule": "object"}),
    "Subject": ("rbac", "A user, group or ServiceAccount a binding names.", {
        "kind": "string", "apiGroup": "string", "name": "string", "namespace": "string"}),
    "RoleRef": ("rbac", "The role a binding grants.", {"apiGroup": "string", "kind": "string", "name": "string"}),
    "RoleBinding": ("rbac", "Grants a Role or ClusterRole in a namespace (kept, not enforced).", _BINDING),
    "ClusterRoleBinding": ("rbac", "Grants a ClusterRole cluster-wide (kept, not enforced).", _BINDING),
    "NetworkPolicy": ("networking", "The traffic pods may send and receive (meshd keeps it; it does not enforce "
                      "it).", {**_OBJECT, "spec": "NetworkPolicySpec"}),
    "NetworkPolicySpec": ("networking", "Which pods a NetworkPolicy selects and what it allows.", {
        "podSelector": "LabelSelector", "policyTypes": "[string]", "ingress": "[object]", "egress": "[object]"}),
    "PodDisruptionBudget": ("policy", "How many pods of a set may be disrupted at once (meshd keeps it; its "
                            "evictions do not consult it).", {**_OBJECT, "spec": "PodDisruptionBudgetSpec",
                                                              "status": "object"}),
    "PodDisruptionBudgetSpec": ("policy", "The pods a budget covers and how many must stay available.", {
        "minAvailable": "int-or-string", "maxUnavailable": "int-or-string", "selector": "LabelSelector",
        "unhealthyPodEvictionPolicy": "string"}),
    "HorizontalPodAutoscaler": ("autoscaling", "Scales a workload by its metrics (meshd keeps it; it does not "
                                "autoscale).", {**_OBJECT, "spec": "HorizontalPodAutoscalerSpec", "status": "object"}),
    "HorizontalPodAutoscalerSpec": ("autoscaling", "The workload an autoscaler scales and its bounds.", {
        "scaleTargetRef": "CrossVersionObjectReference", "minReplicas": "integer", "maxReplicas": "integer",
        "metrics": "[object]", "behavior": "object"}),
    "CrossVersionObjectReference": ("autoscaling", "The workload an autoscaler scales.", {
        "apiVersion": "string", "kind": "string", "name": "string"}),
    "ResourceQuota": ("core", "Limits on what a namespace may use (meshd keeps it; it does not enforce it).", {
        **_OBJECT, "spec": "ResourceQuotaSpec", "status": "object"}),
    "ResourceQuotaSpec": ("core", "The hard limits of a quota.", {
        "hard": "{quantity}", "scopes": "[string]", "scopeSelector": "object"}),
    "LimitRange": ("core", "Default and bounding resources of a namespace's containers (meshd keeps it; it does "
                   "not apply it).", {**_OBJECT, "spec": "LimitRangeSpec"}),
    "LimitRangeSpec": ("core", "The limits of a LimitRange.", {"limits": "[LimitRangeItem]"}),
    "LimitRangeItem": ("core", "The limits of one type of object.", {
        "type": "string", "max": "{quantity}", "min": "{quantity}", "default": "{quantity}",
        "defaultRequest": "{quantity}", "maxLimitRequestRatio": "{quantity}"}),
    "PriorityClass": ("scheduling", "A named pod priority (meshd keeps it; it neither orders nor preempts by "
                      "it).", {**_OBJECT, "value": "integer", "globalDefault": "boolean", "description": "string",
                               "preemptionPolicy": "string"}),
}

__all__ = ["PACKAGES", "TYPES"]

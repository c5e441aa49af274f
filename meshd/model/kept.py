"""The kinds meshd keeps without acting on them, as an API server with no controller for them would: stored,
served, listed, watched, patched and deleted like any object, so a directory of manifests that has them (an app's
ServiceAccount and RBAC, its NetworkPolicies, PodDisruptionBudget, HorizontalPodAutoscaler, quotas) applies whole
with `kubectl apply -f` and `meshd up -f`. Each write of one says what meshd does not do with it (a `Warning:`
kubectl prints, a warning `meshd` prints). Pure data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeptKind:
    kind: str
    api_version: str
    plural: str
    short_names: tuple[str, ...]
    # its top-level fields besides apiVersion, kind and metadata (status is ignored), each with its shape: "list"
    # (of objects), "object", "bool", "int" or "string"; "!" when it is required
    fields: dict[str, str]
    namespaced: bool
    note: str  # what meshd does not do with it


_RBAC = ("meshd does not authorize by RBAC: whoever holds the agent's token may do everything (its objects are "
         "kept for the manifests that carry them)")
KEPT: tuple[KeptKind, ...] = (
    KeptKind("ServiceAccount", "v1", "serviceaccounts", ("sa",),
             {"secrets": "list", "imagePullSecrets": "list", "automountServiceAccountToken": "bool"}, True,
             "meshd issues no token for a ServiceAccount and mounts none into pods"),
    KeptKind("Role", "rbac.authorization.k8s.io/v1", "roles", (), {"rules": "list"}, True, _RBAC),
    KeptKind("RoleBinding", "rbac.authorization.k8s.io/v1", "rolebindings", (), {"subjects": "list", "roleRef": "object!"}, True,
             _RBAC),
    KeptKind("ClusterRole", "rbac.authorization.k8s.io/v1", "clusterroles", (), {"rules": "list", "aggregationRule": "object"},
             False, _RBAC),
    KeptKind("ClusterRoleBinding", "rbac.authorization.k8s.io/v1", "clusterrolebindings", (),
             {"subjects": "list", "roleRef": "object!"}, False, _RBAC),
    KeptKind("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", ("netpol",), {"spec": "object"}, True,
             "meshd does not enforce NetworkPolicies: every pod can reach every Service"),
    KeptKind("PodDisruptionBudget", "policy/v1", "poddisruptionbudgets", ("pdb",), {"spec": "object"}, True,
             "meshd's evictions and drains do not consult PodDisruptionBudgets"),
    KeptKind("HorizontalPodAutoscaler", "autoscaling/v2", "horizontalpodautoscalers", ("hpa",), {"spec": "object!"}, True,
             "meshd does not autoscale: replicas stay as set (kubectl scale changes them)"),
    KeptKind("ResourceQuota", "v1", "resourcequotas", ("quota",), {"spec": "object"}, True,
             "meshd does not enforce ResourceQuotas (the node's --node-cpus and --node-memory bound its pods)"),
    KeptKind("LimitRange", "v1", "limitranges", ("limits",), {"spec": "object"}, True,
             "meshd does not apply LimitRanges: a container's resources are those its manifest gives"),
    KeptKind("PriorityClass", "scheduling.k8s.io/v1", "priorityclasses", ("pc",),
             {"value": "int!", "globalDefault": "bool", "description": "string", "preemptionPolicy": "string"},
             False,
             "meshd neither orders nor preempts pods by priority"),
)
BY_KIND = {k.kind: k for k in KEPT}

__all__ = ["BY_KIND", "KEPT", "KeptKind"]

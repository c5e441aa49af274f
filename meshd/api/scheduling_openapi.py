"""The OpenAPI table entries (see meshd.api.openapi) of a pod's scheduling fields: nodeSelector, affinity,
tolerations and topologySpreadConstraints (meshd.manifests.scheduling reads them)."""

from __future__ import annotations

SCHEDULING_POD_FIELDS = {"nodeSelector": "{string}", "affinity": "Affinity", "tolerations": "[Toleration]",
                         "topologySpreadConstraints": "[TopologySpreadConstraint]", "schedulerName": "string"}
_TERMS = {"requiredDuringSchedulingIgnoredDuringExecution": "[PodAffinityTerm]",
          "preferredDuringSchedulingIgnoredDuringExecution": "[WeightedPodAffinityTerm]"}
SCHEDULING_TYPES: dict[str, tuple[str, str, dict[str, str]]] = {
    "Affinity": ("core", "Affinity is a group of affinity scheduling rules.", {
        "nodeAffinity": "NodeAffinity", "podAffinity": "PodAffinity", "podAntiAffinity": "PodAntiAffinity"}),
    "NodeAffinity": ("core", "Node affinity scheduling rules for the pod.", {
        "requiredDuringSchedulingIgnoredDuringExecution": "NodeSelector",
        "preferredDuringSchedulingIgnoredDuringExecution": "[PreferredSchedulingTerm]"}),
    "NodeSelector": ("core", "A union of node selector terms: a node matching any of them.", {
        "nodeSelectorTerms": "[NodeSelectorTerm]"}),
    "NodeSelectorTerm": ("core", "Requirements on a node's labels and fields, all of which must hold.", {
        "matchExpressions": "[NodeSelectorRequirement]", "matchFields": "[NodeSelectorRequirement]"}),
    "NodeSelectorRequirement": ("core", "A key, an operator (In, NotIn, Exists, DoesNotExist, Gt, Lt) and values.", {
        "key": "string", "operator": "string", "values": "[string]"}),
    "PreferredSchedulingTerm": ("core", "A node selector term with a weight (1-100).", {
        "weight": "integer", "preference": "NodeSelectorTerm"}),
    "PodAffinity": ("core", "Pod affinity scheduling rules: co-locate with other pods.", dict(_TERMS)),
    "PodAntiAffinity": ("core", "Pod anti-affinity scheduling rules: stay apart from other pods.", dict(_TERMS)),
    "PodAffinityTerm": ("core", "The pods this pod should (or should not) share a topology domain with.", {
        "labelSelector": "LabelSelector", "namespaces": "[string]", "topologyKey": "string",
        "namespaceSelector": "LabelSelector", "matchLabelKeys": "[string]", "mismatchLabelKeys": "[string]"}),
    "WeightedPodAffinityTerm": ("core", "A pod affinity term with a weight (1-100).", {
        "weight": "integer", "podAffinityTerm": "PodAffinityTerm"}),
    "Toleration": ("core", "A toleration of the taints it matches (key, operator Equal or Exists, value, effect).", {
        "key": "string", "operator": "string", "value": "string", "effect": "string",
        "tolerationSeconds": "integer"}),
    "TopologySpreadConstraint": ("core", "How to spread matching pods among the given topology.", {
        "maxSkew": "integer", "topologyKey": "string", "whenUnsatisfiable": "string",
        "labelSelector": "LabelSelector", "minDomains": "integer", "matchLabelKeys": "[string]",
        "nodeAffinityPolicy": "string", "nodeTaintsPolicy": "string"}),
}

"""apps/v1 StatefulSet and DaemonSet specs: replicas, selector, template, serviceName, podManagementPolicy,
updateStrategy (RollingUpdate with partition / maxUnavailable / maxSurge, or OnDelete), volumeClaimTemplates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshd.manifests import names
from meshd.manifests.errors import FieldPath, ManifestError
from meshd.manifests.reader import MISSING, DocumentReader
from meshd.manifests.workloads import _int_or_percent, _is_zero, _read_replicated, read_selected_template
from meshd.manifests.storage import read_persistent_volume_claim
from meshd.model.objects import DaemonSet, ObjectMeta, StatefulSet

_SPEC: FieldPath = ("spec",)
_RETAIN = "Retain"


def read_statefulset(reader: DocumentReader, doc: Mapping[str, Any], metadata: ObjectMeta) -> StatefulSet:
    spec = reader.mapping(reader.get(doc, "spec", (), required=True), _SPEC)
    reader.check_fields(
        spec,
        _SPEC,
        known=("replicas", "selector", "template", "serviceName", "podManagementPolicy", "updateStrategy",
               "volumeClaimTemplates", "minReadySeconds", "revisionHistoryLimit",
               "persistentVolumeClaimRetentionPolicy"),
        unsupported=("ordinals",),
    )
    claims = _read_claim_templates(reader, spec)
    replicas, selector, template = _read_replicated(reader, _with_claim_volumes(spec, claims), metadata)
    service_name = reader.string(spec, "serviceName", _SPEC, default="") or ""
    reader.check_name(service_name, _SPEC + ("serviceName",), names.dns1123_label, required=False)
    policy = reader.choice(spec, "podManagementPolicy", _SPEC, ("OrderedReady", "Parallel"), default="OrderedReady")
    strategy, partition = _read_sts_strategy(reader, spec)
    _read_retention(reader, spec)
    history = reader.integer(spec, "revisionHistoryLimit", _SPEC, default=10, minimum=0)
    assert history is not None
    return StatefulSet(
        metadata=metadata,
        replicas=replicas,
        selector=selector,
        template=template,
        service_name=service_name,
        pod_management_policy=policy,  # type: ignore[arg-type]
        update_strategy=strategy,  # type: ignore[arg-type]
        partition=partition,
        volume_claim_templates=claims,
        min_ready_seconds=reader.number(spec, "minReadySeconds", _SPEC, default=0),
        revision_history_limit=history,
        raw=doc,
    )


def read_daemonset(reader: DocumentReader, doc: Mapping[str, Any], metadata: ObjectMeta) -> DaemonSet:
    spec = reader.mapping(reader.get(doc, "spec", (), required=True), _SPEC)
    reader.check_fields(spec, _SPEC, known=("selector", "template", "updateStrategy", "minReadySeconds",
                                            "revisionHistoryLimit"))
    selector, template = read_selected_template(reader, spec, metadata)
    if template.spec.restart_policy != "Always":
        raise reader.fail(_SPEC + ("template", "spec", "restartPolicy"),
                          f'unsupported value "{template.spec.restart_policy}": only "Always" is allowed')
    path = _SPEC + ("updateStrategy",)
    strategy = "RollingUpdate"
    unavailable: int | str = 1
    surge: int | str = 0
    value = reader.get(spec, "updateStrategy", _SPEC)
    if value is not MISSING:
        obj = reader.mapping(value, path)
        reader.check_fields(obj, path, known=("type", "rollingUpdate"))
        strategy = reader.choice(obj, "type", path, ("RollingUpdate", "OnDelete"), default="RollingUpdate")
        rolling = reader.get(obj, "rollingUpdate", path)
        if rolling is not MISSING:
            rpath = path + ("rollingUpdate",)
            if strategy != "RollingUpdate":
                raise reader.fail(rpath, "may not be specified when updateStrategy type is OnDelete")
            rolling = reader.mapping(rolling, rpath)
            reader.check_fields(rolling, rpath, known=("maxUnavailable", "maxSurge"))
            unavailable = _int_or_percent(reader, rolling, "maxUnavailable", rpath) \
                if "maxUnavailable" in rolling else 1
            surge = _int_or_percent(reader, rolling, "maxSurge", rpath) if "maxSurge" in rolling else 0
            if _is_zero(unavailable) and _is_zero(surge):
                raise reader.fail(rpath + ("maxUnavailable",), "may not be 0 when maxSurge is 0")
    history = reader.integer(spec, "revisionHistoryLimit", _SPEC, default=10, minimum=0)
    assert history is not None
    return DaemonSet(
        metadata=metadata,
        selector=selector,
        template=template,
        update_strategy=strategy,  # type: ignore[arg-type]
        max_unavailable=unavailable,
        max_surge=surge,
        min_ready_seconds=reader.number(spec, "minReadySeconds", _SPEC, default=0),
        revision_history_limit=history,
        raw=doc,
    )


def _read_sts_strategy(reader: DocumentReader, spec: Mapping[str, Any]) -> tuple[str, int]:
    value = reader.get(spec, "updateStrategy", _SPEC)
    if value is MISSING:
        return "RollingUpdate", 0
    path = _SPEC + ("updateStrategy",)
    obj = reader.mapping(value, path)
    reader.check_fields(obj, path, known=("type", "rollingUpdate"))
    strategy = reader.choice(obj, "type", path, ("RollingUpdate", "OnDelete"), default="RollingUpdate")
    rolling = reader.get(obj, "rollingUpdate", path)
    if rolling is MISSING:
        return strategy, 0
    rpath = path + ("rollingUpdate",)
    if strategy != "RollingUpdate":
        raise reader.fail(rpath, "only allowed for updateStrategy 'RollingUpdate'")
    rolling = reader.mapping(rolling, rpath)
    reader.check_fields(rolling, rpath, known=("partition",), unsupported=("maxUnavailable",))
    partition = reader.integer(rolling, "partition", rpath, default=0, minimum=0)
    assert partition is not None
    return strategy, partition


def _read_retention(reader: DocumentReader, spec: Mapping[str, Any]) -> None:
    """Claims are kept on scale-down and deletion (Retain, the default); Delete is refused, naming the field."""
    value = reader.get(spec, "persistentVolumeClaimRetentionPolicy", _SPEC)
    if value is MISSING:
        return
    path = _SPEC + ("persistentVolumeClaimRetentionPolicy",)
    obj = reader.mapping(value, path)
    reader.check_fields(obj, path, known=("whenDeleted", "whenScaled"))
    for key in ("whenDeleted", "whenScaled"):
        chosen = reader.choice(obj, key, path, ("Retain", "Delete"), default=_RETAIN)
        if chosen != _RETAIN:
            raise reader.fail(path + (key,), 'unsupported value "Delete": meshd keeps a StatefulSet\'s claims '
                                             '(Retain); delete them with kubectl delete pvc')


def _with_claim_volumes(spec: Mapping[str, Any], claims: tuple[dict, ...]) -> Mapping[str, Any]:
    """The spec whose pod template has a volume for each claim template (as the StatefulSet controller gives
    each pod one: a placeholder here, the pod's own claim in meshd.controller.statefulset)."""
    if not claims:
        return spec
    template = dict(spec.get("template") or {})
    pod_spec = dict(template.get("spec") or {})
    pod_spec["volumes"] = [*(pod_spec.get("volumes") or []),
                           *({"name": c["metadata"]["name"], "emptyDir": {}} for c in claims)]
    template["spec"] = pod_spec
    return {**spec, "template": template}


def _read_claim_templates(reader: DocumentReader, spec: Mapping[str, Any]) -> tuple[dict, ...]:
    """Each template names a claim (TEMPLATE-POD for each pod) and asks for a size; the pod mounts it by name."""
    path = _SPEC + ("volumeClaimTemplates",)
    claims: list[dict] = []
    seen: set[str] = set()
    pod_spec = (spec.get("template") or {}).get("spec") if isinstance(spec.get("template"), dict) else None
    volumes = {v.get("name") for v in (pod_spec or {}).get("volumes") or [] if isinstance(v, dict)} \
        if isinstance(pod_spec, dict) and isinstance(pod_spec.get("volumes"), list) else set()
    for i, item in enumerate(reader.sequence(spec, "volumeClaimTemplates", _SPEC)):
        ipath = path + (i,)
        claim = reader.mapping(item, ipath)
        reader.check_fields(claim, ipath, known=("apiVersion", "kind", "metadata", "spec"),
                            ignored={"status": "ignored (status is set by meshd)"})
        meta = reader.mapping(reader.get(claim, "metadata", ipath, required=True), ipath + ("metadata",))
        name = reader.string(meta, "name", ipath + ("metadata",), required=True)
        reader.check_name(name, ipath + ("metadata", "name"), names.dns1123_label)
        assert name is not None
        if name in seen:
            raise reader.fail(ipath + ("metadata", "name"), f'duplicate value "{name}"')
        if name in volumes:
            raise reader.fail(ipath + ("metadata", "name"),
                              f'"{name}" is also a volume of the pod template: a claim template and a volume may '
                              "not share a name")
        seen.add(name)
        reader.mapping(reader.get(claim, "spec", ipath, required=True), ipath + ("spec",))
        try:  # the claim each pod gets is a PersistentVolumeClaim like any other
            read_persistent_volume_claim(reader, {"spec": claim["spec"]}, ObjectMeta(name=name))
        except ManifestError as error:
            raise reader.fail(ipath + error.path, error.problem) from None
        claims.append(dict(claim))
    return tuple(claims)


__all__ = ["read_daemonset", "read_statefulset"]

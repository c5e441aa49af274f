"""apps/v1 Deployment and ReplicaSet specs: replicas, selector, template, strategy."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from meshd.manifests.errors import FieldPath
from meshd.manifests.meta import read_labels
from meshd.manifests.pods import read_pod_template
from meshd.manifests.reader import INT32_MAX, MISSING, DocumentReader
from meshd.model.objects import (
    Deployment,
    LabelSelector,
    ObjectMeta,
    PodTemplate,
    ReplicaSet,
    RollingUpdateStrategy,
)

_PERCENT = re.compile(r"^(0|[1-9][0-9]{0,8})%$")
_SPEC: FieldPath = ("spec",)


def read_replica_set(reader: DocumentReader, doc: Mapping[str, Any], metadata: ObjectMeta) -> ReplicaSet:
    spec = reader.mapping(reader.get(doc, "spec", (), required=True), _SPEC)
    reader.check_fields(spec, _SPEC, known=("replicas", "selector", "template", "minReadySeconds"))
    replicas, selector, template = _read_replicated(reader, spec, metadata)
    return ReplicaSet(
        metadata=metadata,
        replicas=replicas,
        selector=selector,
        template=template,
        min_ready_seconds=reader.number(spec, "minReadySeconds", _SPEC, default=0),
        raw=doc,
    )


def read_deployment(reader: DocumentReader, doc: Mapping[str, Any], metadata: ObjectMeta) -> Deployment:
    spec = reader.mapping(reader.get(doc, "spec", (), required=True), _SPEC)
    reader.check_fields(
        spec,
        _SPEC,
        known=(
            "replicas",
            "selector",
            "template",
            "strategy",
            "minReadySeconds",
            "progressDeadlineSeconds",
            "revisionHistoryLimit",
            "paused",
        ),
    )
    replicas, selector, template = _read_replicated(reader, spec, metadata)
    strategy, rolling_update = _read_strategy(reader, spec)
    min_ready = reader.number(spec, "minReadySeconds", _SPEC, default=0)
    deadline = reader.number(spec, "progressDeadlineSeconds", _SPEC, default=600)
    if deadline <= min_ready:
        raise reader.fail(
            _SPEC + ("progressDeadlineSeconds",), f"must be greater than minReadySeconds ({min_ready})"
        )
    history = reader.integer(spec, "revisionHistoryLimit", _SPEC, default=10, minimum=0)
    assert history is not None
    return Deployment(
        metadata=metadata,
        replicas=replicas,
        selector=selector,
        template=template,
        strategy=strategy,  # type: ignore[arg-type]
        rolling_update=rolling_update,
        min_ready_seconds=min_ready,
        progress_deadline_seconds=deadline,
        revision_history_limit=history,
        paused=reader.boolean(spec, "paused", _SPEC),
        raw=doc,
    )


def _read_replicated(
    reader: DocumentReader, spec: Mapping[str, Any], metadata: ObjectMeta
) -> tuple[int, LabelSelector, PodTemplate]:
    replicas = reader.integer(spec, "replicas", _SPEC, default=1, minimum=0)
    assert replicas is not None
    selector, template = read_selected_template(reader, spec, metadata)
    return replicas, selector, template


def read_selected_template(
    reader: DocumentReader, spec: Mapping[str, Any], metadata: ObjectMeta
) -> tuple[LabelSelector, PodTemplate]:
    """spec.selector and spec.template of a workload, the selector matching the template's labels."""
    selector = _read_selector(reader, spec)
    template = read_pod_template(reader, spec, _SPEC, namespace=metadata.namespace)
    if not selector.matches(template.metadata.labels):
        wanted = ",".join(f"{k}={v}" for k, v in selector.match_labels.items())
        raise reader.fail(
            _SPEC + ("template", "metadata", "labels"),
            f"selector does not match template labels (spec.selector.matchLabels: {wanted})",
        )
    return selector, template


def _read_selector(reader: DocumentReader, spec: Mapping[str, Any]) -> LabelSelector:
    path = _SPEC + ("selector",)
    selector = reader.mapping(reader.get(spec, "selector", _SPEC, required=True), path)
    reader.check_fields(selector, path, known=("matchLabels",), unsupported=("matchExpressions",))
    labels = read_labels(reader, selector, "matchLabels", path)
    if not labels:
        raise reader.fail(
            path + ("matchLabels",), "an empty selector is not allowed: it would select every pod"
        )
    return LabelSelector(match_labels=labels)


def _read_strategy(reader: DocumentReader, spec: Mapping[str, Any]) -> tuple[str, RollingUpdateStrategy]:
    value = reader.get(spec, "strategy", _SPEC)
    if value is MISSING:
        return "RollingUpdate", RollingUpdateStrategy()
    path = _SPEC + ("strategy",)
    strategy = reader.mapping(value, path)
    reader.check_fields(strategy, path, known=("type", "rollingUpdate"))
    kind = reader.choice(strategy, "type", path, ("RollingUpdate", "Recreate"), default="RollingUpdate")
    rolling = reader.get(strategy, "rollingUpdate", path)
    if kind == "Recreate":
        if rolling is not MISSING:
            raise reader.fail(
                path + ("rollingUpdate",), "may not be specified when strategy type is Recreate"
            )
        return kind, RollingUpdateStrategy()
    if rolling is MISSING:
        return kind, RollingUpdateStrategy()
    rpath = path + ("rollingUpdate",)
    rolling = reader.mapping(rolling, rpath)
    reader.check_fields(rolling, rpath, known=("maxSurge", "maxUnavailable"))
    surge = _int_or_percent(reader, rolling, "maxSurge", rpath)
    unavailable = _int_or_percent(reader, rolling, "maxUnavailable", rpath)
    if _is_zero(surge) and _is_zero(unavailable):
        raise reader.fail(rpath + ("maxUnavailable",), "may not be 0 when maxSurge is 0")
    if isinstance(unavailable, str) and int(unavailable[:-1]) > 100:
        raise reader.fail(rpath + ("maxUnavailable",), "must not be greater than 100%")
    return kind, RollingUpdateStrategy(max_surge=surge, max_unavailable=unavailable)


def _int_or_percent(reader: DocumentReader, obj: Mapping[str, Any], key: str, path: FieldPath) -> int | str:
    value = reader.get(obj, key, path)
    if value is MISSING:
        return "25%"
    if isinstance(value, str):
        if not _PERCENT.match(value):
            raise reader.fail(
                path + (key,), f'expected an integer or a percentage such as "25%", got "{value}"'
            )
        return value
    return reader.as_integer(value, path + (key,), minimum=0, maximum=INT32_MAX)


def _is_zero(value: int | str) -> bool:
    return value == 0 or value == "0%"

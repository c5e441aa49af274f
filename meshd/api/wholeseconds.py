"""Sub-second durations as Kubernetes clients can read them. meshd takes `periodSeconds: 0.5` (and other
fractions of a second) where Kubernetes has whole seconds, but Go clients decode objects into structs whose
seconds are int32/int64: `kubectl describe`, `exec`, `logs`, `rollout` fail on a 0.5 (`cannot unmarshal number
0.5 into Go struct field Probe...periodSeconds of type int32`). So the API serves each such value rounded up to
a whole second and keeps the exact ones in the annotation `meshd.io/fractional-seconds` (a JSON object by field
path); a write that carries the annotation back (an edit, a label, a patch of the served object) gets the exact
values again wherever the client left the rounded one as it was. Pure."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from typing import Any

ANNOTATION = "meshd.io/fractional-seconds"

_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_PROBE_SECONDS = ("initialDelaySeconds", "periodSeconds", "timeoutSeconds", "terminationGracePeriodSeconds")
_SPEC_SECONDS = ("minReadySeconds", "progressDeadlineSeconds", "activeDeadlineSeconds")
Slot = tuple[dict[str, Any], str, str]  # (the dict holding the value, its key, its path)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _pod_spec_slots(spec: dict[str, Any], path: str) -> Iterator[Slot]:
    for key in ("terminationGracePeriodSeconds", "activeDeadlineSeconds"):
        yield spec, key, f"{path}.{key}"
    for group in ("initContainers", "containers"):
        containers = spec.get(group)
        for i, container in enumerate(containers if isinstance(containers, list) else []):
            container = _dict(container)
            where = f"{path}.{group}[{i}]"
            for probe_name in _PROBES:
                probe = _dict(container.get(probe_name))
                for key in _PROBE_SECONDS:
                    yield probe, key, f"{where}.{probe_name}.{key}"
            sleep = _dict(_dict(_dict(container.get("lifecycle")).get("preStop")).get("sleep"))
            yield sleep, "seconds", f"{where}.lifecycle.preStop.sleep.seconds"


def _slots(obj: dict[str, Any]) -> Iterator[Slot]:
    """Where meshd takes fractions: the spec's own seconds, and the pod spec's (a Pod's, a template's, a
    CronJob's job template's)."""
    spec = _dict(obj.get("spec"))
    for key in _SPEC_SECONDS:
        yield spec, key, f"spec.{key}"
    if "containers" in spec:
        yield from _pod_spec_slots(spec, "spec")
    template = _dict(spec.get("template"))
    if template:
        yield from _pod_spec_slots(_dict(template.get("spec")), "spec.template.spec")
    job = _dict(_dict(_dict(spec.get("jobTemplate")).get("spec")).get("template"))
    if job:
        yield from _pod_spec_slots(_dict(job.get("spec")), "spec.jobTemplate.spec.template.spec")


def _fraction(value: Any) -> bool:
    return isinstance(value, float) and not value.is_integer() and math.isfinite(value)


def _pod_spec_has_fraction(spec: Any) -> bool:
    if not isinstance(spec, dict):
        return False
    if type(spec.get("terminationGracePeriodSeconds")) is float or type(spec.get("activeDeadlineSeconds")) is float:
        return True
    for group in ("containers", "initContainers"):
        for container in spec.get(group) or ():
            if not isinstance(container, dict):
                continue
            for probe_name in _PROBES:
                probe = container.get(probe_name)
                if probe and any(type(probe.get(key)) is float for key in _PROBE_SECONDS):
                    return True
            if "lifecycle" in container:
                return True  # rare: the full walk decides
    return False


def _has_fraction(obj: dict[str, Any]) -> bool:
    """A quick look for a float where meshd takes fractions (most objects have none: no walk, no copy)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return False
    if any(type(spec.get(key)) is float for key in _SPEC_SECONDS):
        return True
    if "containers" in spec:
        return _pod_spec_has_fraction(spec)
    template = spec.get("template")
    if isinstance(template, dict):
        return _pod_spec_has_fraction(template.get("spec"))
    return "jobTemplate" in spec


def for_clients(obj: dict[str, Any]) -> dict[str, Any]:
    """The object with whole seconds and the exact values in the annotation; the same object when it has no
    fraction (the common case: nothing copied)."""
    if not _has_fraction(obj):
        return obj
    exact = {path: holder[key] for holder, key, path in _slots(obj) if _fraction(holder.get(key))}
    if not exact:
        return obj
    shown = copy.deepcopy(obj)
    for holder, key, path in _slots(shown):
        if path in exact:
            holder[key] = math.ceil(exact[path])
    metadata = shown.setdefault("metadata", {})
    metadata["annotations"] = {**(metadata.get("annotations") or {}),
                               ANNOTATION: json.dumps(exact, sort_keys=True, separators=(",", ":"))}
    return shown


def restore(obj: dict[str, Any]) -> dict[str, Any]:
    """A written object with the annotation's exact values back where the value is still the rounded one, and
    without the annotation (meshd makes it; it is never stored). An annotation that is not meshd's JSON is
    dropped: nothing is restored from it."""
    annotations = _dict(_dict(obj.get("metadata")).get("annotations"))
    if ANNOTATION not in annotations:
        return obj
    obj = copy.deepcopy(obj)
    annotations = obj["metadata"]["annotations"]
    try:
        exact = json.loads(annotations.pop(ANNOTATION))
    except (TypeError, ValueError):
        exact = None
    if not annotations:
        del obj["metadata"]["annotations"]
    if not isinstance(exact, dict):
        return obj
    for holder, key, path in _slots(obj):
        value = exact.get(path)
        if isinstance(value, float) and _fraction(value) and holder.get(key) == math.ceil(value) \
                and not isinstance(holder.get(key), bool):
            holder[key] = value
    return obj


__all__ = ["ANNOTATION", "for_clients", "restore"]

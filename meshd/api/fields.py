"""Field selectors (`?fieldSelector=metadata.name=web,status.phase!=Running`) as the API server reads them: a
pure parser and matcher. A field meshd does not index is an error, never "select all": behind
`kubectl delete --field-selector`, an ignored selector deletes everything."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# the fields each kind can be selected by (the API server's field label conversions, for what meshd serves)
_META = ("metadata.name", "metadata.namespace")
FIELDS: dict[str, tuple[str, ...]] = {
    "Pod": (*_META, "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
            "status.phase", "status.podIP", "status.nominatedNodeName"),
    "Service": (*_META, "spec.clusterIP", "spec.type"),
    "Endpoints": _META,
    "Deployment": _META,
    "Ingress": _META,
    "IngressClass": _META,
    "StatefulSet": _META,
    "DaemonSet": _META,
    "ReplicaSet": (*_META, "status.replicas"),
    "Namespace": (*_META, "status.phase"),
    "Node": (*_META, "spec.unschedulable"),
    "Event": (*_META, "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
              "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
              "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"),
    "Event.events.k8s.io": (*_META, "regarding.kind", "regarding.namespace", "regarding.name", "regarding.uid",
                            "regarding.apiVersion", "regarding.resourceVersion", "regarding.fieldPath", "reason",
                            "reportingController", "type"),
}
# fields whose value is not simply at their path
_DEFAULTS = {"spec.schedulerName": "default-scheduler", "spec.serviceAccountName": "default",
             "spec.restartPolicy": "Always", "spec.unschedulable": "false"}
_PATHS = {"source": "source.component"}


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    value: str
    equal: bool  # "=" / "==" when True, "!=" when False

    def __str__(self) -> str:
        return f"{self.field}{'=' if self.equal else '!='}{self.value}"


class FieldSelectorError(ValueError):
    """A field selector that does not parse, or selects by a field the kind has no index for (a 400)."""


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        raise FieldSelectorError(f"invalid field selector {text!r}: it ends in an escape")
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    out, escaped = [], False
    for char in value:
        if escaped:
            if char not in "\\,=":
                raise FieldSelectorError(f"invalid field selector value {value!r}: unknown escape \\{char}")
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "=":
            raise FieldSelectorError(f"invalid field selector value {value!r}: an unescaped '='")
        else:
            out.append(char)
    return "".join(out)


def parse_field_selector(text: str) -> tuple[FieldRequirement, ...]:
    """ "a=x,b!=y" -> requirements (all must hold); "" selects everything. Raises FieldSelectorError."""
    requirements: list[FieldRequirement] = []
    for term in _split_unescaped(text.strip(), ","):
        term = term.strip()
        if not term:  # "a=x,,b=y": skipped, as the API server does
            continue
        for operator, equal in (("!=", False), ("==", True), ("=", True)):  # noqa: B007 - read after the break
            field, sep, value = term.partition(operator)
            if sep:
                break
        else:
            raise FieldSelectorError(f"invalid field selector term {term!r}: expected FIELD=VALUE or FIELD!=VALUE")
        if not field.strip():
            raise FieldSelectorError(f"invalid field selector term {term!r}: no field")
        requirements.append(FieldRequirement(field.strip(), _unescape(value), equal))
    return tuple(requirements)


def check_supported(kind: str, requirements: tuple[FieldRequirement, ...]) -> None:
    """Raises FieldSelectorError naming the first field `kind` cannot be selected by."""
    supported = FIELDS.get(kind, _META)
    for requirement in requirements:
        if requirement.field not in supported:
            raise FieldSelectorError(f'field label not supported: {requirement.field} (for {kind}, one of: '
                                     f'{", ".join(supported)})')


def field_value(obj: dict[str, Any], field: str) -> str:
    """The value a field selector compares: the text at the field's path, "" when absent (as the API server)."""
    value: Any = obj
    for part in _PATHS.get(field, field).split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None or value == "":
        return _DEFAULTS.get(field, "")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def matches(requirements: tuple[FieldRequirement, ...], obj: dict[str, Any]) -> bool:
    return all((field_value(obj, r.field) == r.value) == r.equal for r in requirements)


__all__ = ["FIELDS", "FieldRequirement", "FieldSelectorError", "check_supported", "field_value", "matches",
           "parse_field_selector"]

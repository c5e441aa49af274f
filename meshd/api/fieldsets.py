"""Field management as the Kubernetes API server keeps it in `metadata.managedFields` (structured-merge-diff):
which manager owns which fields, in the FieldsV1 encoding (`f:spec` / `f:replicas` for fields,
`k:{"name":"web"}` for an item of a list keyed by its merge key, `.` for a node that is itself owned), the
conflicts of a server-side apply, and the fields an applier stops applying (removed when only it owned them).
Pure functions of plain JSON values; the schema knowledge is the small tables below.

A path is a tuple of FieldsV1 elements ("f:spec", "f:replicas"); a field set is a frozenset of paths."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshd.api.patching import strategic_merge

Path = tuple[str, ...]
FieldSet = frozenset[Path]

# the lists Kubernetes keys by these fields (x-kubernetes-list-map-keys), with their defaults; others are atomic
LIST_KEYS: Mapping[str, tuple[str, ...]] = {
    "containers": ("name",), "initContainers": ("name",), "ephemeralContainers": ("name",), "env": ("name",),
    "volumes": ("name",), "volumeMounts": ("mountPath",), "imagePullSecrets": ("name",), "hostAliases": ("ip",),
    "conditions": ("type",), "ownerReferences": ("uid",), "volumeDevices": ("devicePath",),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"), "resourceClaims": ("name",),
}
KEY_DEFAULTS: Mapping[str, Any] = {"protocol": "TCP"}
ATOMIC = frozenset({"selector"})  # maps replaced whole (a LabelSelector, a Service's selector)
MAPS = frozenset({"labels", "annotations", "nodeSelector", "data", "stringData", "binaryData", "limits",
                  "requests", "parameters"})  # maps (not structs): an Update that adds one owns it too (".")
MANAGED_METADATA = ("labels", "annotations", "ownerReferences", "finalizers")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_PRESENT = object()  # the value of a node that is owned itself (a list item, a map)


class ApplyConflict(Exception):
    """A server-side apply that would change fields other managers own: (their entry, path) pairs."""

    def __init__(self, conflicts: Sequence[tuple[Mapping[str, Any], Path]]) -> None:
        super().__init__(conflict_message(conflicts))
        self.conflicts = conflicts


@dataclass(frozen=True)
class Manager:
    """Who writes: the manager's name, the operation (Apply or Update), the object's apiVersion, the
    subresource ("" for the object itself) and the time to record."""
    name: str
    operation: str
    api_version: str
    time: str
    subresource: str = ""

    def owns(self, entry: Mapping[str, Any]) -> bool:
        return (entry.get("manager"), entry.get("operation"), entry.get("subresource", "") or "") == (
            self.name, self.operation, self.subresource)

    def entry(self, fields: FieldSet) -> dict[str, Any]:
        entry = {"manager": self.name, "operation": self.operation, "apiVersion": self.api_version,
                 "time": self.time, "fieldsType": "FieldsV1", "fieldsV1": encode(fields)}
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry


# --- the FieldsV1 encoding ------------------------------------------------------------------------------

def encode(fields: Iterable[Path]) -> dict[str, Any]:
    """A field set as FieldsV1: a tree of elements, `.` marking a node owned itself that has children."""
    members = set(fields)
    tree: dict[str, Any] = {}
    for path in members:
        node = tree
        for element in path:
            node = node.setdefault(element, {})

    def ordered(node: dict[str, Any], path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {".": {}} if node and path in members else {}
        out.update((k, ordered(node[k], path + (k,))) for k in sorted(node))
        return out

    return ordered(tree, ())


def decode(tree: Any, prefix: Path = ()) -> FieldSet:
    """The field set a FieldsV1 tree names; ValueError if it is not one."""
    if not isinstance(tree, Mapping):
        raise ValueError(f"fieldsV1 must be an object, not {json.dumps(tree)}")
    out: set[Path] = set()
    for element, sub in tree.items():
        if element == ".":
            out.add(prefix)
        elif not isinstance(element, str) or element[:2] not in ("f:", "k:", "v:", "i:"):
            raise ValueError(f"fieldsV1: {element!r} is not a field (f:), key (k:), value (v:) or index (i:)")
        elif sub:
            out |= decode(sub, prefix + (element,))
        else:
            out.add(prefix + (element,))
    return frozenset(out)


def path_string(path: Path) -> str:
    """A path as the API server prints it: `.spec.template.spec.containers[name="web"].image`."""
    parts = []
    for element in path:
        kind, value = element[:2], element[2:]
        if kind == "f:":
            parts.append("." + value)
        elif kind == "k:":
            key = json.loads(value)
            parts.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in key.items()) + "]")
        elif kind == "v:":
            parts.append(f"[={value}]")
        else:
            parts.append(f"[{value}]")
    return "".join(parts)


def managed_sets(entries: Any) -> list[tuple[dict[str, Any], FieldSet]]:
    """metadata.managedFields as (entry, field set) pairs; ValueError names what is malformed."""
    if entries in (None, ""):
        return []
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise ValueError("metadata.managedFields must be a list of ManagedFieldsEntry objects")
    out = []
    for entry in entries:
        if entry.get("fieldsType", "FieldsV1") != "FieldsV1":
            raise ValueError(f"metadata.managedFields: fieldsType must be FieldsV1, not {entry.get('fieldsType')!r}")
        out.append((dict(entry), decode(entry.get("fieldsV1") or {})))
    return out


# --- the fields of an object ----------------------------------------------------------------------------

def _managed_part(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What field management covers: not apiVersion, kind, status, nor the server's metadata."""
    part = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status", "metadata")}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k in MANAGED_METADATA}
    if meta:
        part["metadata"] = meta
    return part


def _item_key(field: str, item: Mapping[str, Any]) -> str | None:
    keys = LIST_KEYS.get(field)
    if field == "ports":
        keys = ("containerPort", "protocol") if "containerPort" in item else ("port", "protocol")
    if keys is None or not all(k in item or k in KEY_DEFAULTS for k in keys):
        return None
    return "k:" + json.dumps({k: item.get(k, KEY_DEFAULTS.get(k)) for k in sorted(keys)}, separators=(",", ":"))


def leaves(obj: Mapping[str, Any], *, maps_owned: bool) -> dict[Path, Any]:
    """Every owned path of an object with its value: scalars, atomic maps and lists, empty maps, and the items
    of keyed lists (plus, with `maps_owned`, every map such as labels: an Update that adds one owns it)."""
    out: dict[Path, Any] = {}

    def walk(value: Any, path: Path, field: str) -> None:
        if isinstance(value, Mapping) and value and field not in ATOMIC:
            if maps_owned and field in MAPS:
                out[path] = _PRESENT
            for key, sub in value.items():
                walk(sub, path + ("f:" + str(key),), str(key))
        elif isinstance(value, list) and value and all(isinstance(i, Mapping) for i in value) and all(
                _item_key(field, i) for i in value):
            for item in value:
                item_path = path + (str(_item_key(field, item)),)
                out[item_path] = _PRESENT
                for key, sub in item.items():
                    walk(sub, item_path + ("f:" + str(key),), str(key))
        elif path:
            out[path] = value

    walk(_managed_part(obj), (), "")
    return out


def field_set(obj: Mapping[str, Any]) -> FieldSet:
    """The fields an applied configuration sets (what its manager owns after the apply)."""
    return frozenset(leaves(obj, maps_owned=False))


# --- the two operations ---------------------------------------------------------------------------------

def update(old: Mapping[str, Any] | None, new: Mapping[str, Any], entries: Any, manager: Manager
           ) -> list[dict[str, Any]]:
    """managedFields after an Update (create, replace, a patch, scale): the manager owns what it changed,
    which every other manager loses; removed fields leave every manager. Never a conflict."""
    before = leaves(old or {}, maps_owned=True)
    after = leaves(new, maps_owned=True)
    changed = frozenset(p for p, v in after.items() if p not in before or before[p] != v)
    removed = frozenset(before) - frozenset(after)
    result: list[dict[str, Any]] = []
    mine: FieldSet = frozenset()
    for entry, fields in managed_sets(entries):
        if manager.owns(entry):
            mine = fields
            continue
        result.append(_with(entry, fields - changed - removed))
    result.append(manager.entry((mine | changed) - removed))
    return [e for e in result if e["fieldsV1"]]


def apply(live: Mapping[str, Any] | None, applied: Mapping[str, Any], entries: Any, manager: Manager, *,
          force: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A server-side apply: the object `applied` makes of `live` (merged by list keys, with the fields this
    manager applied before and applies no more removed unless another manager owns them) and the new
    managedFields. Fields other managers own that the apply would change raise ApplyConflict, unless `force`
    takes them over. A live object no manager is recorded for is owned by "before-first-apply"."""
    mine = field_set(applied)
    merged = strategic_merge(copy.deepcopy(dict(live or {})), dict(applied))
    sets = managed_sets(entries)
    if live is not None and not sets:
        sets = [({"manager": "before-first-apply", "operation": "Update", "apiVersion": manager.api_version},
                 frozenset(leaves(live, maps_owned=True)))]
    before, after = leaves(live or {}, maps_owned=True), leaves(merged, maps_owned=True)
    changing = frozenset(p for p in mine if (p in before) != (p in after) or
                         (p in before and before[p] != after[p]))
    conflicts = [(entry, path) for entry, fields in sets if not manager.owns(entry)
                 for path in sorted(fields & changing)]
    if conflicts and not force and manager.name == "kubectl":  # kubectl's upgrade from client-side apply
        allowed = last_applied_fields(live or {}, manager.api_version)
        conflicts = [(entry, path) for entry, path in conflicts if path not in allowed]
        force = not conflicts
    if conflicts and not force:
        raise ApplyConflict(conflicts)
    previous: FieldSet = frozenset()
    others: list[tuple[dict[str, Any], FieldSet]] = []
    for entry, fields in sets:
        if manager.owns(entry):
            previous = fields
        else:
            others.append((entry, fields - changing if force else fields))
    owned = frozenset().union(*(f for _, f in others)) | mine
    for path in sorted(previous - mine, key=len):  # an item before its fields
        if not any(o[:len(path)] == path for o in owned):
            _remove(merged, path)
    result = [_with(e, f) for e, f in others] + [manager.entry(mine)]
    return merged, [e for e in result if e["fieldsV1"]]


def last_applied_fields(live: Mapping[str, Any], api_version: str) -> FieldSet:
    """The fields `kubectl apply` (client-side) last applied that still hold their applied value: kubectl's
    server-side apply takes these over without a conflict, as the API server's lastAppliedManager does."""
    text = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    try:
        applied = json.loads(text) if text else None
    except ValueError:
        return frozenset()
    if not isinstance(applied, Mapping) or applied.get("apiVersion") != api_version:
        return frozenset()
    now = leaves(live, maps_owned=False)
    return frozenset(p for p, v in leaves(applied, maps_owned=False).items() if p in now and now[p] == v)


def _with(entry: Mapping[str, Any], fields: FieldSet) -> dict[str, Any]:
    return {**entry, "fieldsType": "FieldsV1", "fieldsV1": encode(fields)}


def _remove(obj: dict[str, Any], path: Path) -> None:
    """Deletes the field or list item at `path` (if there), and the maps it leaves empty."""
    parents: list[tuple[Any, str, str]] = []
    node: Any = obj
    field = ""
    for element in path:
        parents.append((node, element, field))
        if element.startswith("f:") and isinstance(node, dict):
            node = node.get(element[2:])
        elif element.startswith("k:") and isinstance(node, list):
            node = next((i for i in node if isinstance(i, Mapping) and _item_key(field, i) == element), None)
        else:
            return
        if node is None:
            return
        field = element[2:]
    for container, element, field in reversed(parents):
        if isinstance(container, dict):
            container.pop(element[2:], None)
        else:
            container[:] = [i for i in container if not (isinstance(i, Mapping) and _item_key(field, i) == element)]
        if container:
            return


# --- the API server's words -------------------------------------------------------------------------------

def manager_words(entry: Mapping[str, Any]) -> str:
    """How a conflict names a manager: `"kubectl-client-side-apply" using apps/v1` for an Update."""
    words = json.dumps(str(entry.get("manager", "")))
    if entry.get("subresource"):
        words += f" with subresource {json.dumps(str(entry['subresource']))}"
    if entry.get("operation") == "Update":
        words += f" using {entry.get('apiVersion', '')}"
    return words


def conflict_message(conflicts: Sequence[tuple[Mapping[str, Any], Path]]) -> str:
    if len(conflicts) == 1:
        entry, path = conflicts[0]
        return f"Apply failed with 1 conflict: conflict with {manager_words(entry)}: {path_string(path)}"
    by_manager: dict[str, list[Path]] = {}
    for entry, path in conflicts:
        by_manager.setdefault(manager_words(entry), []).append(path)
    lines = []
    for words in sorted(by_manager):
        lines.append(f"conflicts with {words}:")
        lines += [f"- {path_string(p)}" for p in by_manager[words]]
    return f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)


def conflict_causes(conflicts: Sequence[tuple[Mapping[str, Any], Path]]) -> list[dict[str, str]]:
    return [{"type": "FieldManagerConflict", "message": f"conflict with {manager_words(entry)}",
             "field": path_string(path)} for entry, path in conflicts]


__all__ = ["ApplyConflict", "Manager", "apply", "conflict_causes", "conflict_message", "decode", "encode",
           "field_set", "leaves", "managed_sets", "path_string", "update"]

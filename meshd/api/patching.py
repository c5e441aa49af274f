"""The patch formats of the Kubernetes API as pure functions of (live object, patch) -> patched object:
JSON merge patch (RFC 7386), JSON patch (RFC 6902, by the `jsonpatch` package), strategic merge patch (lists of
containers, ports, env, volumes... merged by their key, with the `$patch`, `$setElementOrder`, `$retainKeys` and
`$deleteFromPrimitiveList` directives kubectl sends) and server-side apply (the applied configuration merged onto
the live object). A patch that cannot apply raises PatchError (a 400 BadRequest); the inputs are never changed."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import yaml

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
PATCH_TYPES = (MERGE, JSON_PATCH, STRATEGIC, APPLY)

# the patchMergeKey of the lists Kubernetes merges by key (the others are replaced whole, as it does)
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath", "imagePullSecrets": "name",
    "hostAliases": "ip", "conditions": "type", "topologySpreadConstraints": "topologyKey",
    "ownerReferences": "uid", "resourceClaims": "name",
}
PRIMITIVE_MERGED = ("finalizers",)  # lists of scalars merged as sets


class PatchError(ValueError):
    """A patch that is malformed or does not apply to the object (a 400 BadRequest)."""


def parse_body(content_type: str, body: bytes) -> Any:
    """The patch document of a request body; YAML for apply patches, JSON for the others."""
    try:
        if content_type == APPLY:
            return yaml.safe_load(body.decode())
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise PatchError(f"the body of the request was in an unknown format - accepted media types include: "
                         f"{', '.join(PATCH_TYPES)}: {error}") from None


def apply_patch(content_type: str, live: dict[str, Any], patch: Any) -> dict[str, Any]:
    """The object `patch` (already parsed, see parse_body) of media type `content_type` makes of `live`."""
    if content_type == JSON_PATCH:
        return json_patch(live, patch)
    if not isinstance(patch, dict):
        raise PatchError("the patch must be a JSON object")
    if content_type == MERGE:
        return merge_patch(live, patch)
    if content_type in (STRATEGIC, APPLY):
        return strategic_merge(live, patch)
    raise PatchError(f"unsupported patch type {content_type!r}: use one of {', '.join(PATCH_TYPES)}")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else (lists too) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: dict[str, Any], operations: Any) -> dict[str, Any]:
    """RFC 6902 (add, remove, replace, move, copy, test); a failing `test` or a missing path is a PatchError."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    try:
        patched = jsonpatch.JsonPatch(operations).apply(copy.deepcopy(target))
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError,
            IndexError) as error:
        raise PatchError(f"the JSON patch does not apply: {error}") from None
    if not isinstance(patched, dict):
        raise PatchError("the JSON patch must leave an object")
    return patched


def strategic_merge(target: Any, patch: Any, field: str = "") -> Any:
    """Kubernetes' strategic merge patch of `target` (the field's name selects a list's merge key)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    body = {k: v for k, v in patch.items() if k != "$patch"}
    if directive == "replace":
        return {k: v for k, v in copy.deepcopy(body).items() if not k.startswith("$")}
    if directive is not None:
        raise PatchError(f"unknown $patch directive {directive!r} (expected delete or replace)")
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    orders: dict[str, list[Any]] = {}
    retain: list[str] | None = None
    for key, value in body.items():
        if key.startswith("$setElementOrder/"):
            if not isinstance(value, list):
                raise PatchError(f"{key} must be a list")
            orders[key.partition("/")[2]] = value
        elif key.startswith("$deleteFromPrimitiveList/"):
            name = key.partition("/")[2]
            if not isinstance(value, list):
                raise PatchError(f"{key} must be a list")
            if isinstance(result.get(name), list):
                result[name] = [v for v in result[name] if v not in value]
        elif key == "$retainKeys":
            if not isinstance(value, list):
                raise PatchError("$retainKeys must be a list")
            retain = [str(v) for v in value]
        elif key.startswith("$"):
            raise PatchError(f"unknown strategic merge directive {key!r}")
        elif value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, key)
        else:
            merged = strategic_merge(result.get(key), value, key)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    for name, order in orders.items():
        if isinstance(result.get(name), list):
            result[name] = _ordered(result[name], order, _merge_key(name, result[name]))
    if retain is not None:
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":  # a container's ports merge by containerPort, a Service's by port
        return "containerPort" if any(isinstance(i, dict) and "containerPort" in i for i in items) else "port"
    return MERGE_KEYS.get(field)


def _merge_list(live: Any, patch: list[Any], field: str) -> list[Any]:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    current = copy.deepcopy(live) if isinstance(live, list) else []
    if field in PRIMITIVE_MERGED and all(not isinstance(i, (dict, list)) for i in patch):
        return current + [i for i in patch if i not in current]
    key = _merge_key(field, [*current, *patch])
    if key is None or not all(isinstance(i, dict) for i in patch):
        return [i for i in (strategic_merge(None, p) if isinstance(p, dict) else copy.deepcopy(p) for p in patch)
                if i is not None]
    for item in patch:
        if key not in item:
            raise PatchError(f"an item of {field} has no merge key {key!r}: {json.dumps(item)}")
        at = next((n for n, c in enumerate(current) if isinstance(c, dict) and c.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if at is not None:
                del current[at]
            continue
        if at is None:
            current.append(strategic_merge(None, item))
        else:
            current[at] = strategic_merge(current[at], item)
    return current


def _ordered(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    """The items in `$setElementOrder`'s order (by merge key, or value); the ones it does not name keep theirs
    after."""
    def ident(item: Any) -> Any:
        return item.get(key) if key and isinstance(item, dict) else item

    wanted = [ident(o) for o in order]
    named = sorted((i for i in items if ident(i) in wanted), key=lambda i: wanted.index(ident(i)))
    return named + [i for i in items if ident(i) not in wanted]


__all__ = ["APPLY", "JSON_PATCH", "MERGE", "PATCH_TYPES", "STRATEGIC", "PatchError", "apply_patch",
           "json_patch", "merge_patch", "parse_body", "strategic_merge"]

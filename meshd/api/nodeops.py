"""What kubectl writes of nodes in a cluster (meshd.cluster): `kubectl cordon`/`uncordon` (a PATCH of
spec.unschedulable), `kubectl taint`, `kubectl label`/`annotate node`, `kubectl delete node`, and the
`pods/eviction` subresource `kubectl drain` evicts pods through (POST of a policy/v1 Eviction).

A Node's other fields are its agent's (status, capacity, addresses): a patch changing them is refused (422),
naming the fields a client may write. A deleted Node takes its Lease with it; every agent then revokes its
certificates, the leader deletes its pods (made again on other nodes), and its agent, if it still runs, stops
(meshd.cluster.member). meshd has no PodDisruptionBudgets, so an eviction is a plain graceful delete.

`node_changes` and `eviction_target` are pure; the handlers are thin."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from meshd.api import status as api_status
from meshd.api.kinds import NODE, POD, Kind
from meshd.api.patching import APPLY, PATCH_TYPES, PatchError, apply_patch, parse_body
from meshd.cluster.nodes import NODE_LEASE_NAMESPACE, USER_SPEC_FIELDS
from meshd.controller.loop import Controller
from meshd.store import Conflict, Delete, Update

Reader = Callable[[Kind, str, str], dict[str, Any] | None]
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
WRITABLE_FIELDS = "metadata.labels, metadata.annotations, spec.unschedulable and spec.taints"
ATTEMPTS = 5  # a patch racing the node's heartbeat is computed again


def _string_map(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise PatchError(f"{field}: must be a map of strings")
    return dict(value)


def _taints(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PatchError("spec.taints: must be a list")
    for i, taint in enumerate(value):
        if not isinstance(taint, dict) or not isinstance(taint.get("key"), str) or not taint["key"]:
            raise PatchError(f"spec.taints[{i}].key: Required value")
        if taint.get("effect") not in TAINT_EFFECTS:
            raise PatchError(f"spec.taints[{i}].effect: Unsupported value: {taint.get('effect')!r}: supported "
                             f"values: {', '.join(TAINT_EFFECTS)}")
        if not isinstance(taint.get("value", ""), str):
            raise PatchError(f"spec.taints[{i}].value: must be a string")
    return [dict(t) for t in value]


def node_changes(shown: Mapping[str, Any], patched: Mapping[str, Any]) -> dict[str, Any]:
    """What a client's patch of a Node (`shown` as GET shows it, `patched` after the patch) changes of the fields
    it may write: {"labels", "annotations", "unschedulable", "taints"} (the ones it changed). PatchError for a
    change anywhere else (status, capacity, other spec fields: the agent's), or an invalid value."""
    before_meta, after_meta = shown.get("metadata") or {}, patched.get("metadata") or {}
    before_spec, after_spec = shown.get("spec") or {}, patched.get("spec") or {}
    if not isinstance(after_spec, dict) or not isinstance(after_meta, dict):
        raise PatchError("spec and metadata must be objects")
    changed: dict[str, Any] = {}
    for field in ("labels", "annotations"):
        if after_meta.get(field) != before_meta.get(field):
            changed[field] = _string_map(after_meta.get(field), f"metadata.{field}")
    if after_spec.get("unschedulable") != before_spec.get("unschedulable"):
        value = after_spec.get("unschedulable")
        if value is not None and not isinstance(value, bool):
            raise PatchError(f"spec.unschedulable: must be a boolean, not {value!r}")
        changed["unschedulable"] = bool(value)
    if after_spec.get("taints") != before_spec.get("taints"):
        changed["taints"] = _taints(after_spec.get("taints"))
    others = [f"spec.{k}" for k in set(before_spec) | set(after_spec)
              if k not in USER_SPEC_FIELDS and before_spec.get(k) != after_spec.get(k)]
    others += [k for k in ("status",) if shown.get(k) != patched.get(k)]
    others += [f"metadata.{k}" for k in ("name", "uid") if before_meta.get(k) != after_meta.get(k)]
    if others:
        raise PatchError(f"meshd's agents own a Node's {', '.join(sorted(others))}: a client may change only "
                         f"{WRITABLE_FIELDS}")
    return changed


def changed_node(stored: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The stored Node with `changes` (node_changes') written into it. Pure."""
    meta = dict(stored["metadata"])
    spec = dict(stored.get("spec") or {})
    for field in ("labels", "annotations"):
        if field in changes:
            meta[field] = dict(changes[field])
    if "unschedulable" in changes:
        if changes["unschedulable"]:
            spec["unschedulable"] = True
        else:
            spec.pop("unschedulable", None)  # as the API server shows an uncordoned node: no field
    if "taints" in changes:
        if changes["taints"]:
            spec["taints"] = list(changes["taints"])
        else:
            spec.pop("taints", None)
    return {**stored, "metadata": meta, "spec": spec}


def eviction_target(body: Any, namespace: str, name: str) -> str | None:
    """Why an Eviction body does not evict the pod of the request path (None: it does)."""
    if not isinstance(body, dict):
        return "the request body must be an Eviction object"
    if body.get("kind", "Eviction") != "Eviction" or body.get("apiVersion", "policy/v1") not in (
            "policy/v1", "policy/v1beta1"):
        return f"expected a policy/v1 Eviction, not a {body.get('apiVersion')} {body.get('kind')}"
    meta = body.get("metadata") or {}
    if not isinstance(meta, dict):
        return "metadata must be an object"
    if meta.get("name", name) != name:
        return f"name in URL does not match name in Eviction object ({meta.get('name')} and {name})"
    if meta.get("namespace", namespace) not in (namespace, ""):
        return "the namespace of the Eviction does not match the namespace of the request"
    return None


class NodeOps:
    def __init__(self, controller: Controller, read: Reader) -> None:
        self.controller = controller
        self.read = read

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Before the generic write routes (which refuse nodes)."""
        router.add_patch("/api/v1/nodes/{name}", self.patch)
        router.add_delete("/api/v1/nodes/{name}", self.delete)
        router.add_post("/api/v1/namespaces/{ns}/pods/{name}/eviction", self.evict)

    def _stored(self, name: str) -> dict[str, Any]:
        store = self.controller.store
        stored = store.get("Node", "", name)
        if stored is None:
            if not store.list("Node"):
                raise web.HTTPMethodNotAllowed("", ["GET"], text=json.dumps(api_status.status(
                    405, "a single meshd agent's node is its own and is not written through the API (nodes are "
                         "written in a cluster: meshd agent --store etcd://...)", reason="MethodNotAllowed")),
                    content_type="application/json")
            raise KeyError(f'nodes "{name}" not found')
        return dict(stored)

    async def patch(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        content_type = request.content_type
        if content_type not in PATCH_TYPES or content_type == APPLY:
            return api_status.response(415, f"a Node is patched with {', '.join(t for t in PATCH_TYPES if t != APPLY)}"
                                            f", not {content_type!r}")
        patch = parse_body(content_type, await request.read())
        for attempt in range(ATTEMPTS):
            stored = self._stored(name)
            shown = self.read(NODE, "", name) or stored
            changes = node_changes(shown, apply_patch(content_type, shown, patch))
            if changes and not request.query.getall("dryRun", []):
                try:
                    await self.controller.store.transaction([Update(changed_node(stored, changes))])
                except Conflict:  # the node's heartbeat wrote it meanwhile: patched again
                    if attempt == ATTEMPTS - 1:
                        raise
                    continue
            return web.json_response(self.read(NODE, "", name) or changed_node(stored, changes))
        raise AssertionError("unreachable")

    async def delete(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        stored = self._stored(name)
        uid = str(stored["metadata"].get("uid", ""))
        if not request.query.getall("dryRun", []):
            operations: list[Any] = [Delete("Node", "", name, str(stored["metadata"]["resourceVersion"]))]
            lease = self.controller.store.get("Lease", NODE_LEASE_NAMESPACE, name)
            if lease is not None:
                operations.append(Delete("Lease", NODE_LEASE_NAMESPACE, name))
            await self.controller.store.transaction(operations)
            self.controller.events.record("Node", "default", name, "Normal", "RemovingNode",
                                          f"Node {name} deleted: its pods are evicted, its certificates revoked")
        return web.json_response(api_status.success(name=name, kind=NODE.plural, uid=uid))

    async def evict(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["ns"], request.match_info["name"]
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError as error:
            raise PatchError(f"the request body is not a JSON Eviction: {error}") from None
        problem = eviction_target(body, namespace, name)
        if problem is not None:
            return api_status.response(400, problem)
        if self.read(POD, namespace, name) is None:
            raise KeyError(f'pods "{name}" not found')
        if not request.query.getall("dryRun", []):
            c = self.controller
            if ("Pod", namespace, name) in c.objects:  # a user's bare Pod: deleted as DELETE deletes it
                await c.delete("Pod", namespace, name)
            else:  # a controller's pod: stopped gracefully, its controller makes another
                c.delete_pod(namespace, name)
                await c.pod_deletion_written(namespace, name)
            c.events.record("Pod", namespace, name, "Normal", "Evicted", "Evicted through the eviction API")
        return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                  "code": 201}, status=201)


__all__ = ["NodeOps", "changed_node", "eviction_target", "node_changes"]

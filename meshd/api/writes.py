"""The write verbs of the Kubernetes API: POST to a collection (create), PUT (replace), PATCH (every patch type
of meshd.api.patching), DELETE, and the `scale` subresource. Every write goes through the controller's
`apply`, the path `meshd apply` takes (validated by meshd.manifests, persisted in the store in one transaction),
so a refused write changes nothing. `dryRun=All` validates and answers the result without storing it."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import yaml
from aiohttp import web

from meshd.api import deleting, fieldsets, listing, protobuf, wholeseconds
from meshd.api import status as api_status
from meshd.api.kinds import (
    DEPLOYMENT,
    ENDPOINTSLICE,
    EVENTS_V1,
    INGRESSCLASS,
    KINDS,
    LEASE,
    NAMESPACE,
    NODE,
    REPLICASET,
    STATEFULSET,
    Kind,
)
from meshd.api.patching import APPLY, MERGE, PATCH_TYPES, PatchError, apply_patch, parse_body
from meshd.api.managers import conflict_response, field_manager, managed_after_update
from meshd.api.scale import scale_of
from meshd.controller import cascade
from meshd.controller.loop import Controller
from meshd.controller.records import REVISION_ANNOTATION
from meshd.manifests import ManifestError, load_objects
from meshd.manifests.reader import INT32_MAX
from meshd.model.kept import BY_KIND as KEPT_BY_KIND
from meshd.model.kept import KEPT
from meshd.store import AlreadyExists, Conflict

WRITABLE = ("Pod", "Service", "Deployment", "ReplicaSet", "PersistentVolumeClaim", "PersistentVolume", "StorageClass",
            "StatefulSet", "DaemonSet", "ConfigMap", "Secret", "Ingress", "Job", "CronJob", "Namespace",
            *(k.kind for k in KEPT))
PREFIXES = ("/api/v1", "/apis/apps/v1", "/apis/storage.k8s.io/v1", "/apis/networking.k8s.io/v1",
            "/apis/batch/v1", *sorted({f"/apis/{k.api_version}" for k in KEPT if "/" in k.api_version} -
                                      {"/apis/networking.k8s.io/v1"}))  # the group versions served
# group versions whose GETs are served with the rest (their writes, if any, elsewhere)
GET_PREFIXES = ("/apis/coordination.k8s.io/v1", "/apis/events.k8s.io/v1", "/apis/discovery.k8s.io/v1")
# metadata the server sets: never taken from a client's object
SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
                   "deletionTimestamp", "deletionGracePeriodSeconds")
Reader = Callable[[Kind, str, str], dict[str, Any] | None]
Lister = Callable[[Kind, str | None], Awaitable[list[dict[str, Any]]]]

_RESOURCES = {(k.group, k.plural): k for k in (*KINDS, NAMESPACE, NODE, INGRESSCLASS, LEASE, EVENTS_V1, ENDPOINTSLICE)}


def request_kind(request: web.Request) -> Kind:
    """The kind a /api/v1/... or /apis/G/V/... path names; an unknown one, or a namespace on a cluster-scoped
    kind (or an object of a namespaced kind without one), is a NotFound Status."""
    group = request.path.split("/")[2] if request.path.startswith("/apis/") else ""
    kind = _RESOURCES.get((group, request.match_info["resource"]))
    scoped = "ns" in request.match_info
    if kind is None or (scoped and not kind.namespaced) or (
            not scoped and kind.namespaced and ("name" in request.match_info or request.method != "GET")):
        raise web.HTTPNotFound()
    return kind


def desired(kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
    """What a client's object asks for, as a manifest: no status, no server-set metadata. Pure."""
    manifest = {k: copy.deepcopy(v) for k, v in obj.items() if k != "status"}
    meta = {k: v for k, v in (manifest.get("metadata") or {}).items() if k not in SERVER_METADATA}
    annotations = dict(meta.get("annotations") or {})
    if kind.kind == "Deployment":  # the controller's, shown on GET
        annotations.pop(REVISION_ANNOTATION, None)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    manifest["metadata"] = meta
    spec = manifest.get("spec")
    if kind.kind == "Service" and isinstance(spec, dict):  # allocated by the agent, shown on GET
        ips = spec.pop("clusterIPs", None)
        if spec.get("clusterIP") is None and ips:
            spec["clusterIP"] = ips[0]
        if spec.get("clusterIP") is None:
            spec.pop("clusterIP", None)
    return manifest


def dry_run_result(kind: Kind, obj: dict[str, Any], manifest: dict[str, Any], live: dict[str, Any] | None,
                   managed: list[dict[str, Any]] | None) -> dict[str, Any]:
    """What a dryRun=All write answers, as the API server does: the object as it would be stored, with the live
    object's server-set metadata (and a Deployment's revision annotation) and the live status, never the
    client's (`kubectl diff` shows only what the write changes). Pure."""
    result = copy.deepcopy(obj)
    result.pop("status", None)
    if live is not None:
        live_meta = live.get("metadata") or {}
        meta = {**manifest["metadata"], **{k: v for k, v in live_meta.items() if k in SERVER_METADATA}}
        revision = (live_meta.get("annotations") or {}).get(REVISION_ANNOTATION)
        if kind.kind == "Deployment" and revision is not None:  # the controller's (desired() drops it)
            meta["annotations"] = {**(meta.get("annotations") or {}), REVISION_ANNOTATION: revision}
        result["metadata"] = meta
        if live.get("status") is not None:
            result["status"] = copy.deepcopy(live["status"])
    if managed is not None:
        result["metadata"]["managedFields"] = managed
    return result


def replicas_problem(replicas: Any) -> str | None:
    """Why a Scale's replicas is invalid (an int32 of at least 0, as in Kubernetes), or None."""
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        return "must be an integer"
    if replicas < 0:
        return "must be greater than or equal to 0"
    if replicas > INT32_MAX:
        return f"must be less than or equal to {INT32_MAX}"
    return None


def with_warning(response: web.Response, kind: Kind) -> web.Response:
    """A write of a kind meshd keeps without acting on it says so, as the API server's warnings (RFC 7234's
    `Warning: 299 - "..."`, which kubectl prints as "Warning: ...")."""
    kept = KEPT_BY_KIND.get(kind.kind)
    if kept is not None:
        response.headers["Warning"] = f'299 - "{kept.note}"'
    return response


def _dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    if any(v != "All" for v in values):
        raise ValueError(f"dryRun must be All, not {values}")
    return bool(values)


def _invalid(kind: Kind, name: str, error: ManifestError, *, strict: bool) -> web.Response:
    """An object meshd cannot accept, as the API server says it: 422 Invalid with the field path as a cause, or
    400 BadRequest for an unknown field under fieldValidation=Strict (a strict decoding error)."""
    if strict and error.problem.startswith("unknown field"):
        message = f'{kind.kind} in version "{kind.version}" cannot be handled as a {kind.kind}: strict decoding ' \
                  f'error: unknown field "{error.field_path}"'
        return api_status.response(400, message)
    body = api_status.invalid(error)
    where = f"{error.field_path}: " if error.path else ""
    body["message"] = f'{kind.kind}{"." + kind.group if kind.group else ""} "{name}" is invalid: ' \
                      f'{where}{error.problem}'
    body["details"].update(name=name, kind=kind.plural, **({"group": kind.group} if kind.group else {}))
    return web.json_response(body, status=422)


def _identified(kind: Kind, namespace: str, name: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The object with the kind, name and namespace of the request path; one naming others is a PatchError."""
    obj = dict(obj)
    if obj.get("kind", kind.kind) != kind.kind or obj.get("apiVersion", kind.api_version) != kind.api_version:
        raise PatchError(f"the object is a {obj.get('apiVersion')} {obj.get('kind')}, not a "
                         f"{kind.api_version} {kind.kind} as the request path says")
    obj.update(kind=kind.kind, apiVersion=kind.api_version)
    meta = dict(obj.get("metadata") or {})
    if meta.get("name", name) != name:
        raise PatchError(f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                         f"({name})")
    if meta.get("namespace", namespace) != namespace:
        raise PatchError("the namespace of the provided object does not match the namespace sent on the "
                         "request")
    meta.update(name=name, namespace=namespace)
    obj["metadata"] = meta
    return obj


def _from_cronjob(obj: dict[str, Any]) -> bool:
    """A Job `kubectl create job --from=cronjob/NAME` made: owned by a CronJob."""
    return any(r.get("kind") == "CronJob" for r in (obj.get("metadata") or {}).get("ownerReferences") or [])


async def _body(request: web.Request) -> dict[str, Any]:
    """A POST's or PUT's object, JSON or YAML."""
    raw = await request.read()
    if request.content_type == protobuf.CONTENT_TYPE:
        try:
            return protobuf.decode(raw)
        except protobuf.ProtobufError as error:
            raise web.HTTPUnsupportedMediaType(text=str(error)) from None
    try:
        if "yaml" in request.content_type:
            body = yaml.safe_load(raw.decode())
        else:
            body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise PatchError(f"the request body is not a JSON or YAML object: {error}") from None
    if not isinstance(body, dict):
        raise PatchError("the request body must be an object")
    return body


class _Stale(Conflict):
    """The object changed between a patch's read and its write: the patch is computed again."""


PATCH_ATTEMPTS = 5


class Writes:
    """The handlers; `read` answers an object as GET shows it (None when there is none)."""

    def __init__(self, controller: Controller, read: Reader,
                 versions: Callable[[str, str, str, str], str] | None = None,
                 objects: Lister | None = None) -> None:
        """`objects(kind, namespace)`: the objects a list shows (None: every namespace), for deletecollection."""
        self.controller = controller
        self.read = read
        self.objects = objects
        # the store version a client's resourceVersion stands for (one from the watch cache: meshd.api.watchcache)
        self.versions = versions or (lambda _kind, _namespace, _name, version: version)
        self._turns: dict[tuple[str, str, str], tuple[asyncio.Lock, int]] = {}  # an object's patches, in turn

    @contextlib.asynccontextmanager
    async def _one_at_a_time(self, key: tuple[str, str, str]) -> AsyncIterator[None]:
        """Read-patch-writes of one object one after another (the lock is dropped when nobody waits)."""
        lock, users = self._turns.get(key, (asyncio.Lock(), 0))
        self._turns[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._turns[key]
            if users == 1:
                del self._turns[key]
            else:
                self._turns[key] = (lock, users - 1)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        for prefix in PREFIXES:
            router.add_post(prefix + "/namespaces/{ns}/{resource}", self.create)
            router.add_put(prefix + "/namespaces/{ns}/{resource}/{name}", self.replace)
            router.add_patch(prefix + "/namespaces/{ns}/{resource}/{name}", self.patch)
            router.add_delete(prefix + "/namespaces/{ns}/{resource}/{name}", self.delete)
            router.add_delete(prefix + "/namespaces/{ns}/{resource}", self.delete_collection)
            router.add_put(prefix + "/namespaces/{ns}/{resource}/{name}/status", self.status)
            router.add_patch(prefix + "/namespaces/{ns}/{resource}/{name}/status", self.status)
            # cluster-scoped kinds (PersistentVolume, StorageClass)
            router.add_post(prefix + "/{resource}", self.create)
            router.add_put(prefix + "/{resource}/{name}", self.replace)
            router.add_patch(prefix + "/{resource}/{name}", self.patch)
            router.add_delete(prefix + "/{resource}/{name}", self.delete)
            router.add_delete(prefix + "/{resource}", self.delete_collection)  # every namespace, or cluster-scoped
        for resource in ("deployments", "replicasets", "statefulsets"):
            router.add_patch(f"/apis/apps/v1/namespaces/{{ns}}/{resource}/{{name}}/scale", self.scale)
            router.add_put(f"/apis/apps/v1/namespaces/{{ns}}/{resource}/{{name}}/scale", self.scale)

    # --- the verbs ------------------------------------------------------------------------------------

    async def create(self, request: web.Request) -> web.Response:
        kind, namespace = self._writable(request), request.match_info.get("ns", "")
        obj = await _body(request)
        if request.content_type == protobuf.CONTENT_TYPE and kind.kind == "Job" and _from_cronjob(obj):
            obj = self._job_from_cronjob(namespace, obj)
        name = str((obj.get("metadata") or {}).get("name") or "")
        if not name:
            return api_status.response(422, f"{kind.kind} is invalid: metadata.name: Required value: name is "
                                            f"required (meshd does not generate names)",
                                       details={"kind": kind.plural, "causes": [
                                           {"reason": "FieldValueRequired", "message": "Required value",
                                            "field": "metadata.name"}]})
        managed = managed_after_update(request, kind, None, obj)
        return await self._write(request, kind, namespace, name, obj, live=None, code=201, managed=managed)

    async def replace(self, request: web.Request) -> web.Response:
        kind, namespace, name = self._writable(request), request.match_info.get("ns", ""), request.match_info["name"]
        obj = _identified(kind, namespace, name, await _body(request))
        live = self._live(kind, namespace, name)
        managed = managed_after_update(request, kind, live, obj)
        return await self._write(request, kind, namespace, name, obj, live=live, code=200, managed=managed)

    async def patch(self, request: web.Request) -> web.Response:
        kind, namespace, name = self._writable(request), request.match_info.get("ns", ""), request.match_info["name"]
        content_type = request.content_type
        if content_type not in PATCH_TYPES:
            return api_status.response(415, f"the body of the request was in an unknown format - accepted media "
                                            f"types include: {', '.join(PATCH_TYPES)}")
        if content_type == APPLY and not request.query.get("fieldManager"):
            return api_status.response(400, "PATCH /apply requests require a fieldManager (e.g. ?fieldManager=x)")
        if content_type != APPLY and "force" in request.query:
            return api_status.response(422, "force: Forbidden: may not be specified for non-apply patch")
        patch = parse_body(content_type, await request.read())
        async with self._one_at_a_time((kind.kind, namespace, name)):  # patches of one object: in turn
            for attempt in range(PATCH_ATTEMPTS):  # as the API server: one changed meanwhile is patched again
                try:
                    return await self._patch_once(request, kind, namespace, name, content_type, patch)
                except (_Stale, AlreadyExists):
                    if attempt == PATCH_ATTEMPTS - 1:
                        raise
        raise AssertionError("unreachable")

    async def _patch_once(self, request: web.Request, kind: Kind, namespace: str, name: str, content_type: str,
                          patch: Any) -> web.Response:
        """One read-patch-write; _Stale when the object changed between the read and the write."""
        live = self.read(kind, namespace, name)
        stored = self.controller.store.get(kind.kind, namespace, name)  # read with `live`: no await between
        base = str(stored["metadata"].get("resourceVersion")) if stored is not None else None
        if live is None and content_type != APPLY:
            raise KeyError(f'{kind.resource} "{name}" not found')
        if content_type == APPLY:  # server-side apply: creates what is not there; conflicts are a 409
            if not isinstance(patch, dict):
                raise PatchError("an apply patch must be an object")
            manager = field_manager(request, kind, "Apply")
            try:
                patched, managed = fieldsets.apply(live, _identified(kind, namespace, name, patch),
                                                   (live or {}).get("metadata", {}).get("managedFields"), manager,
                                                   force=request.query.get("force") == "true")
            except fieldsets.ApplyConflict as conflict:
                return conflict_response(kind, name, conflict)
            return await self._write(request, kind, namespace, name, patched, live=live,
                                     code=200 if live else 201, managed=managed, base=base)
        assert live is not None
        patched = apply_patch(content_type, live, patch)
        managed = managed_after_update(request, kind, live, patched)
        return await self._write(request, kind, namespace, name, patched, live=live, code=200, managed=managed,
                                 base=base)

    async def delete(self, request: web.Request) -> web.Response:
        kind, namespace, name = self._writable(request), request.match_info.get("ns", ""), request.match_info["name"]
        options = await _body(request) if request.can_read_body else {}
        return await self._delete_one(request, kind, namespace, name, options)

    async def delete_collection(self, request: web.Request) -> web.Response:
        """DELETE of a collection (the Python client's `delete_collection_*`): every object its label and field
        selectors pick, each as a DELETE of it would (options, propagationPolicy, dryRun); answered with a Status.
        One gone meanwhile is skipped; the first refusal is the answer, after the ones before it went."""
        kind, namespace = self._writable(request), request.match_info.get("ns")
        query = listing.parse_query(kind, request.query, "")
        options = await _body(request) if request.can_read_body else {}
        if self.objects is None:
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])
        for obj in [o for o in await self.objects(kind, namespace) if listing.selected(query, o)]:
            meta = obj.get("metadata") or {}
            try:
                answer = await self._delete_one(request, kind, str(meta.get("namespace") or ""), str(meta["name"]),
                                                {k: v for k, v in options.items() if k != "preconditions"})
            except KeyError:
                continue  # gone meanwhile
            if answer.status >= 400:
                return answer
        body = api_status.success(kind=kind.plural)
        if kind.group:
            body["details"]["group"] = kind.group
        return web.json_response(body)

    async def _delete_one(self, request: web.Request, kind: Kind, namespace: str, name: str,
                          options: dict[str, Any]) -> web.Response:
        live = self._live(kind, namespace, name)
        policy = options.get("propagationPolicy") or request.query.get("propagationPolicy") or "Background"
        if policy not in ("Background", "Foreground", "Orphan"):
            raise PatchError(f"propagationPolicy must be Background, Foreground or Orphan, not {policy!r}")
        expected = (options.get("preconditions") or {})
        meta = live.get("metadata") or {}
        if expected.get("resourceVersion"):
            expected = {**expected, "resourceVersion": self.versions(kind.kind, namespace, name,
                                                                     str(expected["resourceVersion"]))}
        for field in ("uid", "resourceVersion"):
            if expected.get(field) and expected[field] != meta.get(field):
                raise Conflict(f'Operation cannot be fulfilled on {kind.resource} "{name}": Precondition failed: '
                               f'{field} in precondition: {expected[field]}, {field} in object meta: '
                               f'{meta.get(field)}')
        if not _dry_run(request):
            try:
                pending = await deleting.delete(self.controller, kind, namespace, name, policy, options)
            except cascade.CannotOrphan as error:  # refused before anything changed
                return api_status.response(422, str(error))
            if pending is not None:  # Terminating: finalizers hold it (meshd.api.deleting)
                return web.json_response(self.read(kind, namespace, name) or pending)
            if kind.kind == "Pod" and ("Pod", namespace, name) not in self.controller.objects:
                self.controller.delete_pod(namespace, name)  # a ReplicaSet's pod: it starts another
                await self.controller.pod_deletion_written(namespace, name)
            elif policy == "Orphan" and kind.kind in cascade.ORPHANABLE:
                try:
                    await cascade.delete_orphaning(self.controller, kind.kind, namespace, name)
                except cascade.CannotOrphan as error:  # refused before anything changed
                    return api_status.response(422, str(error))
            else:
                await self.controller.delete(kind.kind, namespace, name)
        details = {"name": name, "kind": kind.plural, "uid": str(meta.get("uid", ""))}
        body = api_status.success(**details)
        if kind.group:
            body["details"]["group"] = kind.group
        return web.json_response(body)

    async def scale(self, request: web.Request) -> web.Response:
        kind = next(k for k in (DEPLOYMENT, REPLICASET, STATEFULSET) if f"/{k.plural}/" in request.path)
        namespace, name = request.match_info.get("ns", ""), request.match_info["name"]
        current = scale_of(self._live(kind, namespace, name))
        if deleting.held(self.controller, kind, namespace, name):
            return api_status.response(422, f'Scale.autoscaling "{name}" is invalid: spec.replicas: Forbidden: the '
                                            f'{kind.kind} is being deleted (metadata.deletionTimestamp is set)')
        if request.method == "PUT":
            wanted = await _body(request)
        else:
            content_type = request.content_type
            if content_type in ("application/json", "application/yaml"):  # `meshd scale`'s: a merge patch
                patch = parse_body(APPLY, await request.read())  # YAML, so JSON too
                content_type = MERGE
            elif content_type in PATCH_TYPES:
                patch = parse_body(content_type, await request.read())
            else:
                return api_status.response(415, f"unsupported patch type {content_type!r}")
            wanted = apply_patch(content_type, current, patch)
        version = (wanted.get("metadata") or {}).get("resourceVersion")
        if version and self.versions(kind.kind, namespace, name, str(version)) != current["metadata"].get(
                "resourceVersion"):
            raise Conflict(self._conflict(kind, name))
        replicas = (wanted.get("spec") or {}).get("replicas") if isinstance(wanted.get("spec"), dict) else None
        problem = replicas_problem(replicas)
        if problem is not None:
            message = f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: {replicas!r}: {problem}'
            return api_status.response(422, message, details={
                "name": name, "group": "autoscaling", "kind": "Scale", "causes": [
                    {"reason": "FieldValueInvalid", "message": f"Invalid value: {replicas!r}: {problem}",
                     "field": "spec.replicas"}]})
        assert isinstance(replicas, int)
        if _dry_run(request):
            current["spec"]["replicas"] = replicas
            return web.json_response(current)
        async with self._one_at_a_time((kind.kind, namespace, name)):
            live = self._live(kind, namespace, name)
            scaled = {**live, "spec": {**(live.get("spec") or {}), "replicas": replicas}}
            managed = managed_after_update(request, kind, live, scaled, subresource="scale")
            await self.controller.scale(kind.kind, namespace, name, replicas, managed_fields=managed)
        return web.json_response(scale_of(self._live(kind, namespace, name)))

    async def status(self, request: web.Request) -> web.Response:
        kind = self._writable(request)
        self._live(kind, namespace=request.match_info.get("ns", ""), name=request.match_info["name"])
        return api_status.response(405, f"the status of {kind.resource} is written by meshd's controller only",
                                   reason="MethodNotAllowed")

    # --- one write ------------------------------------------------------------------------------------

    async def _write(self, request: web.Request, kind: Kind, namespace: str, name: str, obj: dict[str, Any], *,
                     live: dict[str, Any] | None, code: int, managed: list[dict[str, Any]] | None = None,
                     base: str | None = None) -> web.Response:
        """Checks the object against the request, then validates and stores it (or, with dryRun, only
        validates it) and answers it as GET shows it. `managed`: its metadata.managedFields (meshd.api.fieldsets);
        `base`: the stored resourceVersion the object was computed from (a patch's), _Stale if it changed since."""
        obj = wholeseconds.restore(_identified(kind, namespace, name, obj))  # the sub-second values it was served
        meta = obj["metadata"]
        version = self.versions(kind.kind, namespace, name, str(meta.get("resourceVersion") or ""))
        if live is not None and deleting.held(self.controller, kind, namespace, name):  # Terminating: metadata only
            refusal = deleting.refused(kind, name, live, obj)
            if refusal is not None:
                return refusal
            if _dry_run(request):
                return web.json_response(obj, status=code)
            def current(stored: Any) -> None:  # as check() below: a patch computed from an older object is redone
                now = str(stored["metadata"].get("resourceVersion"))
                if base is not None and base != now:
                    raise _Stale(self._conflict(kind, name))
                if version and version != now:
                    raise Conflict(self._conflict(kind, name))

            edited = await deleting.edit(self.controller, kind, namespace, name, obj, managed, current)
            return web.json_response(self.read(kind, namespace, name) or edited, status=code)
        manifest = desired(kind, obj)
        if managed is not None:
            manifest["metadata"]["managedFields"] = managed
        strict = request.query.get("fieldValidation") == "Strict"
        try:
            load_objects([manifest], source=f"{kind.plural}/{name}")
        except ManifestError as error:
            return _invalid(kind, name, error, strict=strict)

        def check() -> str | None:
            """Refuses a stale write; answers the resourceVersion the write must still find in the store (it may
            move on before the write is staged: another agent's write coming through the watch, a status write)."""
            stored = self.controller.store.get(kind.kind, namespace, name)
            exists = stored is not None or (kind.kind == "Pod" and (namespace, name) in self.controller.pods)
            if live is None and exists:
                raise AlreadyExists(f'{kind.resource} "{name}" already exists')
            if live is not None and not exists:
                raise KeyError(f'{kind.resource} "{name}" not found')
            current = str(stored["metadata"].get("resourceVersion")) if stored is not None else None
            if base is not None and stored is not None and base != current:
                raise _Stale(self._conflict(kind, name))
            if live is not None and version and stored is not None and version != current:
                raise Conflict(self._conflict(kind, name))
            return current if (base is not None or version) else None

        if _dry_run(request):
            check()
            return with_warning(web.json_response(dry_run_result(kind, obj, manifest, live, managed), status=code),
                                kind)
        try:
            await self.controller.apply(json.dumps(manifest), source=f"{kind.plural}/{name}", namespace=namespace,
                                        carry_live=False, check=check, create_namespaces=False)
        except ManifestError as error:  # what only the controller knows: a taken clusterIP or pod name
            return _invalid(kind, name, error, strict=strict)
        except Conflict as error:  # the object moved on after the check: a patch is computed again
            if base is not None and not version and not isinstance(error, _Stale):
                raise _Stale(self._conflict(kind, name)) from None
            raise
        written = self.read(kind, namespace, name) or self.controller.store.get(kind.kind, namespace, name)
        return with_warning(web.json_response(written, status=code), kind)

    # --- helpers --------------------------------------------------------------------------------------

    def _job_from_cronjob(self, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        """A protobuf Job as `kubectl create job --from=cronjob/NAME` sends it: its spec is its CronJob's
        jobTemplate.spec, which meshd takes from the CronJob itself (it does not decode a protobuf spec)."""
        refs = (obj.get("metadata") or {}).get("ownerReferences") or []
        owner = next((r for r in refs if r.get("kind") == "CronJob"), None)
        record = self.controller.objects.get(("CronJob", namespace, str((owner or {}).get("name"))))
        if owner is None or record is None or owner.get("uid") != record.uid:
            raise web.HTTPUnsupportedMediaType(text="a protobuf Job is read only as `kubectl create job "
                                                    "--from=cronjob/NAME` sends it: send application/json")
        template = record.obj.job_template  # type: ignore[union-attr]
        return {**obj, "spec": copy.deepcopy(dict(template.get("spec") or {}))}

    def _writable(self, request: web.Request) -> Kind:
        kind = request_kind(request)
        if kind.kind not in WRITABLE:
            raise web.HTTPMethodNotAllowed(request.method, ["GET"])
        return kind

    def _live(self, kind: Kind, namespace: str, name: str) -> dict[str, Any]:
        live = self.read(kind, namespace, name)
        if live is None:
            raise KeyError(f'{kind.resource} "{name}" not found')
        return live

    @staticmethod
    def _conflict(kind: Kind, name: str) -> str:
        return (f'Operation cannot be fulfilled on {kind.resource} "{name}": the object has been modified; please '
                f'apply your changes to the latest version and try again')


__all__ = ["WRITABLE", "Writes", "desired", "dry_run_result", "replicas_problem", "request_kind", "with_warning"]

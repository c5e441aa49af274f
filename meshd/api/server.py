"""The agent's HTTP API (aiohttp): Kubernetes-shaped resources, apply/delete, the endpoint watch stream for
sidecars, drain acknowledgements, Prometheus metrics and service discovery. Bad requests get a 4xx with a
message; nothing a client sends can take the agent down."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

from meshd.api import (
    batch,
    cluster,
    deleting,
    events,
    ingress,
    kube,
    kubeapi,
    listing,
    nodeops,
    podlogs,
    portforward,
    selfreview,
    sets,
    storage_views,
    watchcache,
    wholeseconds,
    writes,
)
from meshd.api import exec as pod_exec
from meshd.api import join as cluster_join
from meshd.api import status as api_status
from meshd.api.auth import auth_middleware, owner_only_socket
from meshd.api.endpointslices import endpoint_slices
from meshd.api.kinds import Kind
from meshd.api.listen import Listener, count_busy
from meshd.api.scale import scale_of
from meshd.cluster.nodes import nodes_with_readiness
from meshd.controller.loop import Controller
from meshd.controller.records import CHANGE_CAUSE_ANNOTATION
from meshd.controller.sets import SET_KINDS
from meshd.driver.base import DriverError
from meshd.health import HealthChecks, verdict
from meshd.manifests import ManifestError
from meshd.metrics import REGISTRY
from meshd.external.hostports import pod_of
from meshd.model.endpoints import ServiceKey, update_to_json
from meshd.model.kept import BY_KIND as KEPT_BY_KIND
from meshd.model.kept import KEPT
from meshd.model.objects import Pod, ReplicaSet, Service
from meshd.model.selectors import Requirement, parse_selector, selects
from meshd.registry import Registry, Synced
from meshd.registry.drain import DrainCoordinator
from meshd.store import AlreadyExists, Conflict, PersistError

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0
USAGE_WINDOW = 0.25  # seconds between the two cgroup readings a CPU rate comes from
WATCH_SUBSCRIBERS = Gauge("meshd_watch_subscribers", "Open endpoint watch streams (sidecars and clients).",
                          registry=REGISTRY)
MAX_BODY = 3 * 1024 * 1024  # the Kubernetes API server's limit on a request body
RESOURCES = {"pods": "Pod", "deployments": "Deployment", "replicasets": "ReplicaSet", "services": "Service",
             "endpoints": "Endpoints", "statefulsets": "StatefulSet", "daemonsets": "DaemonSet",
             "configmaps": "ConfigMap", "secrets": "Secret"}


def _error(code: int, message: str, **extra: Any) -> web.Response:
    return api_status.response(code, message, **extra)


def _selector(request: web.Request) -> tuple[Requirement, ...]:
    """The request's labelSelector; one that does not parse is a 400 (ValueError), never "select all"."""
    return parse_selector(request.query.get("labelSelector", ""))


_kind = writes.request_kind


def _now() -> datetime:
    return datetime.now(UTC)


# the resources shown from the controller's records of the applied objects, and their kinds
RECORD_KINDS = {"deployments": "Deployment", "services": "Service", "statefulsets": "StatefulSet",
                "daemonsets": "DaemonSet", "configmaps": "ConfigMap", "secrets": "Secret", "ingresses": "Ingress",
                "jobs": "Job", "cronjobs": "CronJob", **{k.plural: k.kind for k in KEPT}}


class ApiServer:
    def __init__(self, *, controller: Controller, registry: Registry, drain: DrainCoordinator,
                 sidecar_targets: Callable[[], list[str]] = list, token: str,
                 health: HealthChecks | None = None) -> None:
        self.controller = controller
        self.health = health or HealthChecks()
        self._started = time.time()  # the node's and default namespace's creationTimestamp
        self.node_grace = 6.0  # with a shared store: a node whose Lease is older is NotReady
        self.registry = registry
        self.drain = drain
        self.sidecar_targets = sidecar_targets
        self.ingress = ingress.IngressFeed(controller)  # the agent sets where Ingresses are served
        self.token = token
        self.app = web.Application(client_max_size=MAX_BODY, middlewares=[
            count_busy, auth_middleware(lambda: self.token), self._body_limit, self._errors])
        self._runner: web.AppRunner | None = None
        self.listeners: list[Listener] = []
        self._unix_socket: Path | None = None
        self._streams: set[web.StreamResponse] = set()
        self._sidecar_metrics: dict[str, str] = {}  # connected sidecar id -> its metrics address
        self.watch_caches = watchcache.WatchCaches(  # lists and watches (meshd.api.watchcache)
            compute=lambda kind: self._served(kind, None), compute_one=self._served_one, store=controller.store,
            subscribe=watchcache.change_sources(controller, registry))
        r = self.app.router
        r.add_get("/healthz", self.healthz)
        r.add_get("/metrics", self.metrics)
        r.add_post("/v1/apply", self.apply)
        r.add_post("/v1/delete", self.delete_manifests)
        r.add_get("/v1/watch/endpoints", self.watch_all_endpoints)
        r.add_get("/v1/namespaces/{ns}/endpoints/{name}", self.service_endpoints)
        r.add_post("/v1/drain", self.drain_ack)
        r.add_post("/v1/listen-failures", self.listen_failure)
        r.add_get("/v1/prometheus/targets", self.prometheus_targets)
        self.join = cluster_join.JoinApi(store=lambda: controller.store, grace=lambda: self.node_grace)
        self.join.add_routes(r)  # the join endpoint (open: its bootstrap token admits) and bootstrap tokens
        kubeapi.add_routes(r)  # /version, discovery, OpenAPI
        events.add_routes(r, controller, self._read)  # POST of an Event (before the generic write routes)
        for prefix in (*writes.PREFIXES, *writes.GET_PREFIXES):
            r.add_get(prefix + "/{resource}", self.list_resources)
            r.add_get(prefix + "/namespaces/{ns}/{resource}", self.list_resources)
            r.add_get(prefix + "/namespaces/{ns}/{resource}/{name}", self.get_resource)
            r.add_get(prefix + "/{resource}/{name}", self.get_resource)  # cluster-scoped: namespaces, nodes
            r.add_get(prefix + "/namespaces/{ns}/{resource}/{name}/status", self.get_resource)  # the object
        r.add_get("/apis/apps/v1/namespaces/{ns}/{resource}/{name}/scale", self.get_resource)
        nodeops.NodeOps(controller, self._read).add_routes(r)  # cordon, delete node, pods/eviction: before writes
        writes.Writes(controller, self._read, self.watch_caches.store_version, self._listed).add_routes(r)  # POST...
        podlogs.add_routes(r, controller)  # pods/log with kubectl's options
        pod_exec.add_routes(r, controller, self._streams)  # exec, attach over WebSocket
        portforward.add_routes(r, controller, self._streams)
        r.add_post("/apis/apps/v1/namespaces/{ns}/deployments/{name}/rollout/{action}", self.rollout)
        r.add_get("/apis/apps/v1/namespaces/{ns}/deployments/{name}/rollout/history", self.history)
        r.add_get("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods", self.pod_metrics)
        r.add_get("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/{name}", self.pod_metrics)
        r.add_get("/apis/metrics.k8s.io/v1beta1/pods", self.pod_metrics)
        selfreview.add_routes(r, lambda: [o["metadata"]["name"] for o in self._objects("nodes", None)])

    async def start(self, host: str, port: int, *, unix_socket: Path | None = None,
                    tls: ssl.SSLContext | None = None) -> None:
        """Serves on TCP (bearer token; with `tls`, HTTPS and plain HTTP on the one port) and, with
        `unix_socket`, on a socket only its owner can open."""
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                                    handler_cancellation=True)  # a gone client ends its stream at once
        await self._runner.setup()
        tcp = Listener(self._runner, tls=tls)
        await tcp.start_tcp(host, port)
        self.listeners.append(tcp)
        if unix_socket is not None:
            self._unix_socket = unix_socket
            local = Listener(self._runner)
            await local.start_socket(await asyncio.to_thread(owner_only_socket, unix_socket))  # stat, unlink, chmod
            self.listeners.append(local)

    async def close(self) -> None:
        for listener in self.listeners:
            listener.close()
        for stream in list(self._streams):
            task = getattr(stream, "_meshd_task", None)
            if task:
                task.cancel()
        if self._runner:
            await self._runner.cleanup()
        await self.watch_caches.close()
        if self._unix_socket is not None:
            await asyncio.to_thread(self._unix_socket.unlink, missing_ok=True)

    @web.middleware
    async def _body_limit(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        """A declared body over the limit is refused before it is read (aiohttp stops a chunked one)."""
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _error(413, f"request body of {request.content_length} bytes is over the limit of "
                               f"{MAX_BODY} bytes (3 MiB)")
        return await handler(request)

    @web.middleware
    async def _errors(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge as error:
            return _error(413, f"request body is over the limit of {MAX_BODY} bytes (3 MiB): {error.text}")
        except web.HTTPException as error:  # aiohttp's 404, 405...: a Status too
            if error.status < 400:
                raise
            return api_status.from_http_exception(error, request.method, request.path)
        except ManifestError as error:
            return web.json_response(api_status.invalid(error), status=422)
        except PersistError as error:  # refused whole: nothing changed, in memory or on disk
            log.error("API %s %s: %s", request.method, request.path, error)
            return _error(getattr(error, "status", 507), str(error))  # 503: a shared store unreachable
        except AlreadyExists as error:
            return _error(409, str(error), reason="AlreadyExists")
        except Conflict as error:
            return _error(409, str(error))
        except KeyError as error:
            return _error(404, error.args[0] if error.args else "not found")
        except PermissionError as error:  # a namespace being deleted, or one that may not be
            return _error(403, str(error))
        except ValueError as error:
            return _error(400, str(error))
        except DriverError as error:
            return _error(503, str(error))
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as error:  # a bug must not take the agent down
            log.exception("API %s %s failed", request.method, request.path)
            return _error(500, f"internal error: {error}")

    # --- plain routes ---------------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        """200 `ok`, or 503 naming each failing check (state writable, loop lag, sidecar connected)."""
        status, text = verdict(await asyncio.to_thread(self.health.run))  # the state check touches the disk
        return web.Response(status=status, text=text)

    async def metrics(self, request: web.Request) -> web.Response:
        body = await asyncio.to_thread(generate_latest, REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def apply(self, request: web.Request) -> web.Response:
        text = await request.text()
        source = request.query.get("source", "<stdin>")
        results, warnings = await self.controller.apply(text, source=source, namespace=request.query.get("namespace"))
        return web.json_response({"results": [r.__dict__ for r in results], "warnings": warnings})

    async def delete_manifests(self, request: web.Request) -> web.Response:
        text = await request.text()
        results = await self.controller.delete_text(text, source=request.query.get("source", "<stdin>"),
                                              namespace=request.query.get("namespace"))
        return web.json_response({"results": [r.__dict__ for r in results], "warnings": []})

    # --- Kubernetes-shaped resources ------------------------------------------------------------------

    def _objects(self, resource: str, namespace: str | None) -> list[dict[str, Any]]:
        c = self.controller

        def ns_ok(ns: str) -> bool:
            return namespace is None or ns == namespace

        if resource == "events":
            return [self._event(o) for o in c.events.objects(namespace)]
        if resource == "namespaces":
            return batch.namespaces(c, started=self._started)
        if resource == "leases":
            return [dict(o) for o in c.store.list("Lease", namespace)]
        if resource == "nodes" and c.store.list("Node"):  # a cluster on a shared store (meshd.cluster)
            return nodes_with_readiness(c.store, grace=self.node_grace, now=time.time())
        if resource == "nodes":
            return [cluster.node(self.registry.node or "meshd", created=self._started,
                                 cpu_millicores=c.capacity.cpu_millicores, memory_bytes=c.capacity.memory_bytes,
                                 address="127.0.0.1", runtime=getattr(c.driver, "name", "unknown"))]
        if resource == "pods" and c.kubelet is not None:  # a cluster: Pod objects of every node
            return kube.cluster_pods(c, namespace)
        if resource == "pods":
            node = self.registry.node or "meshd"  # the name Endpoints' nodeName and mDNS TXT carry too
            if c.pod_objects is not None:  # the Pod objects of the store, their pods' status live
                return kube.node_pods(c, namespace, lambda w: self._pod(w, node))
            return [self._pod(w, node) for (ns, _), w in sorted(c.pods.items()) if ns_ok(ns)]
        if resource == "replicasets":  # (and the Terminating ones whose pods and records went: meshd.api.deleting)
            return [kube.replicaset(c, r) for (ns, _), r in sorted(c.replicasets.items()) if ns_ok(ns)] + \
                deleting.terminating_replicasets(c, namespace, set(c.replicasets))
        if resource in storage_views.RESOURCES:
            return storage_views.objects(c, resource, namespace)
        if resource == "endpointslices":
            return self._endpoint_slices(namespace)
        if resource == "ingressclasses":
            return [ingress.ingress_class(kube.rfc3339(self._started))]
        kinds = {**RECORD_KINDS, "endpoints": "Service"}
        if resource not in kinds:
            raise KeyError(f'the server doesn\'t have a resource type "{resource}"')
        # the applied objects, as the store holds them (one that did not load has no record: left out)
        keys = [(kinds[resource], *key) for key, _ in c.store.scan(kinds[resource], namespace)]
        records = [r for r in (c.objects.get(k) or c.terminating.get(k) for k in keys) if r is not None]  # Terminating too
        return [self._record_object(resource, r) for r in records]

    async def _listed(self, kind: Kind, namespace: str | None) -> list[dict[str, Any]]:
        """The objects a list of this kind shows now (of one namespace, None: all)."""
        objects, _ = await self.watch_caches.listed(kind, namespace, "")
        return objects

    def _one(self, resource: str, namespace: str, name: str) -> list[dict[str, Any]] | None:
        """One object of a resource as `_objects` shows it ([] when there is none), without computing the others;
        None for a resource it has no such shortcut for."""
        c = self.controller
        if resource in RECORD_KINDS:
            key = (RECORD_KINDS[resource], namespace, name)
            record = (c.objects.get(key) or c.terminating.get(key)) if c.store.get(*key) is not None else None
            return [] if record is None else [self._record_object(resource, record)]
        if resource == "events" and (stored := c.store.get("Event", namespace, name)) is not None:
            return [self._event(copy.deepcopy(dict(stored)))]  # (one not written yet: from the EventLog, below)
        if resource == "pods" and c.kubelet is None and c.pod_objects is not None:
            node = self.registry.node or "meshd"
            return kube.node_pods(c, namespace, lambda w: self._pod(w, node), name=name)
        if resource == "pods" and c.kubelet is not None:
            return kube.cluster_pods(c, namespace, name=name)
        return None

    def _record_object(self, resource: str, r: Any) -> dict[str, Any]:
        """An applied object (its record) as its resource shows it."""
        c = self.controller
        if resource == "deployments":
            return kube.deployment(c, r)
        if resource in ("jobs", "cronjobs"):
            return (batch.job if resource == "jobs" else batch.cronjob)(c, r)
        if resource == "services":
            return kube.service(c, r, self.registry)
        if resource == "ingresses":
            return ingress.ingress_object(r, kube.stored_metadata(c, r), self.ingress)
        if resource in ("configmaps", "secrets"):
            return kube.config_object(c, r)
        if r.obj.kind in KEPT_BY_KIND:
            return kube.kept_object(c, r)
        if resource == "statefulsets":
            return sets.statefulset(c, r)
        if resource == "daemonsets":
            return sets.daemonset(c, r)
        return kube.endpoints(r, self.registry)

    def _endpoint_slices(self, namespace: str | None) -> list[dict[str, Any]]:
        c, node = self.controller, self.registry.node or "meshd"
        slices = []
        for o in c.store.list("Service", namespace):
            record = c.objects.get(("Service", o["metadata"]["namespace"], o["metadata"]["name"]))
            if record is None:
                continue
            svc: Service = record.obj  # type: ignore[assignment]
            key = ServiceKey(svc.metadata.namespace, svc.metadata.name)
            slices += endpoint_slices(svc, uid=record.uid, created=kube.rfc3339(record.created),
                                      endpoints=self.registry.endpoints(key) or (), node=node)
        return slices

    def _served(self, kind: Kind, namespace: str | None) -> list[dict[str, Any]]:
        """The objects of a kind as its API group shows them (events.k8s.io: the events, converted)."""
        objects = [wholeseconds.for_clients(o) for o in self._objects(kind.plural, namespace)]  # Go clients' ints
        return [events.to_events_v1(o) for o in objects] if kind.group == "events.k8s.io" else objects

    def _served_one(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        """One object of a kind as `_served` shows it, or None (what the watch cache computes for one change)."""
        one = self._one(kind.plural, namespace, name)
        if one is None:  # no shortcut: the namespace's objects (every one for a cluster-scoped kind)
            one = [o for o in self._objects(kind.plural, namespace if kind.namespaced else None)
                   if (o["metadata"].get("namespace") or "", o["metadata"]["name"]) == (namespace, name)]
        objects = [wholeseconds.for_clients(o) for o in one]
        objects = [events.to_events_v1(o) for o in objects] if kind.group == "events.k8s.io" else objects
        return objects[0] if objects else None

    def _event(self, event: dict[str, Any]) -> dict[str, Any]:
        """A stored v1 Event naming its object's uid (what `kubectl describe` selects events by)."""
        involved = event.setdefault("involvedObject", {})
        if not involved.get("uid"):
            involved["uid"] = self._uid(str(involved.get("kind") or ""),
                                        str(involved.get("namespace") or event["metadata"].get("namespace") or ""),
                                        str(involved.get("name") or ""))
        event["metadata"].setdefault("creationTimestamp", event.get("firstTimestamp"))
        return event

    def _uid(self, kind: str, namespace: str, name: str) -> str:
        c = self.controller
        if kind == "ReplicaSet":
            rs = c.replicasets.get((namespace, name))
            return rs.uid if rs else ""
        record = c.objects.get((kind, namespace, name)) or c.terminating.get((kind, namespace, name))
        if record is not None:
            return record.uid
        worker = c.pods.get((namespace, name)) if kind == "Pod" else None
        return kube.pod_uid(worker) if worker is not None else ""

    def _pod(self, worker: Any, node: str) -> dict[str, Any]:
        c = self.controller
        key = ("Pod", worker.namespace, worker.name)
        bare = (c.objects.get(key) or c.terminating.get(key)) if not worker.identity.replicaset else None  # (Terminating)
        owner = c.replicasets.get((worker.namespace, worker.identity.replicaset))
        obj = kube.pod(worker, uid=bare.uid if bare else "", owner_uid=owner.uid if owner else "", node=node)
        if worker.identity.owner_kind in SET_KINDS:
            identity = worker.identity
            obj["metadata"]["ownerReferences"] = [
                sets.owner_reference(c, identity.owner_kind, identity.namespace, identity.owner)]
        if worker.identity.owner_kind == "Job":
            batch.job_pod_owner(obj, c)
        stored = c.store.get("Pod", worker.namespace, worker.name) if bare or worker.terminating else None
        if stored is None or stored["metadata"].get("uid") != obj["metadata"]["uid"]:
            return obj
        if stored["metadata"].get("managedFields"):  # its field managers (meshd.api.fieldsets)
            obj["metadata"]["managedFields"] = [dict(e) for e in stored["metadata"]["managedFields"]]
        # its finalizers, and the deletionTimestamp stored when it was deleted (not the time of this rendering)
        obj["metadata"] = deleting.with_deletion(obj["metadata"], stored)
        return obj

    async def list_resources(self, request: web.Request) -> web.StreamResponse:
        kind = _kind(request)
        namespace = request.match_info.get("ns")
        query = listing.parse_query(kind, request.query, request.headers.get("Accept", ""))
        if query.watch:
            return await self._watch_resources(request, kind, namespace, None, query)
        objects, version = await self.watch_caches.listed(kind, namespace, query.resource_version)  # watchcache
        body = listing.list_body(kind, query, objects, resource_version=str(version), now=_now())
        return web.json_response(body)

    async def get_resource(self, request: web.Request) -> web.StreamResponse:
        kind = _kind(request)
        namespace, name = request.match_info.get("ns"), request.match_info["name"]
        query = listing.parse_query(kind, request.query, request.headers.get("Accept", ""))
        if query.watch:
            return await self._watch_resources(request, kind, namespace, name, query)
        for obj in self._served(kind, namespace):
            if obj["metadata"]["name"] == name:
                if request.match_info.route.resource and request.match_info.route.resource.canonical.endswith(
                        "/scale"):
                    return web.json_response(scale_of(obj))
                return web.json_response(listing.object_body(kind, query, obj, now=_now()))
        return _error(404, f'{kind.resource} "{name}" not found')

    def _read(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        """One object as GET shows it, or None."""
        return next((o for o in self._served(kind, namespace) if o["metadata"]["name"] == name), None)

    async def _watch_resources(self, request: web.Request, kind: Kind, namespace: str | None,
                               name: str | None, query: listing.ListQuery) -> web.StreamResponse:
        """A watch as the API server streams it (application/json, one event a line), from the watch cache."""
        watchcache.parse_resource_version(query.resource_version)  # not a number: a 400, before the stream
        cache = await self.watch_caches.of(kind)
        response = await self._open_stream(request, content_type="application/json")
        try:
            await watchcache.serve(cache, query, namespace=namespace, name=name,
                                   send=lambda message: self._send(response, message))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._streams.discard(response)
        return response

    async def rollout(self, request: web.Request) -> web.Response:
        namespace, name, action = (request.match_info[k] for k in ("ns", "name", "action"))
        if action == "restart":
            await self.controller.rollout_restart(namespace, name)
            return web.json_response({"result": "restarted"})
        if action == "undo":
            body = await self._json(request) if request.can_read_body else {}
            revision = await self.controller.rollout_undo(namespace, name, body.get("toRevision") or None)
            return web.json_response({"result": "rolled back", "revision": revision})
        return _error(404, f"unknown rollout action {action!r}")

    async def history(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["ns"], request.match_info["name"]
        if ("Deployment", namespace, name) not in self.controller.objects:
            return _error(404, f'deployments "{name}" not found')
        revisions = []
        for record in self.controller.history(namespace, name):
            cause = (record.rs.metadata.annotations.get(CHANGE_CAUSE_ANNOTATION)
                     or record.rs.template.metadata.annotations.get(CHANGE_CAUSE_ANNOTATION, ""))
            revisions.append({"revision": record.revision, "replicaset": record.name, "changeCause": cause,
                              "images": [c.image for c in record.rs.template.spec.containers],
                              "template": record.rs.raw.get("spec", {}).get("template", {})})
        return web.json_response({"revisions": revisions})

    async def pod_metrics(self, request: web.Request) -> web.Response:
        """metrics.k8s.io PodMetrics: CPU as a rate over a short window, memory now (both from the cgroups)."""
        namespace, name = request.match_info.get("ns"), request.match_info.get("name")
        selector = _selector(request)
        workers = [w for (ns, pod), w in sorted(self.controller.pods.items())
                   if namespace in (None, ns) and name in (None, pod) and selects(selector, w.labels)]
        if name is not None and not workers:
            return _error(404, f'podmetrics.metrics.k8s.io "{namespace}/{name}" not found')
        ids = [(w, c, c.id) for w in workers for c in w.containers.values() if c.id]
        driver = self.controller.driver

        async def sample() -> tuple[float, list]:
            return time.monotonic(), await asyncio.gather(*(driver.usage(cid) for _, _, cid in ids))

        t0, first = await sample()
        await asyncio.sleep(USAGE_WINDOW)
        t1, second = await sample()
        usage: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for (worker, status, _), before, after in zip(ids, first, second):
            if before is None or after is None:
                continue
            cores = max(after.cpu_seconds - before.cpu_seconds, 0) / (t1 - t0)
            usage.setdefault((worker.namespace, worker.name), []).append({"name": status.name, "usage": {
                "cpu": f"{int(cores * 1e9)}n", "memory": f"{after.memory_bytes // 1024}Ki"}})
        # only pods with a running container have metrics (metrics-server's rule: a completed Job's pod has none)
        items = [{"metadata": {"name": w.name, "namespace": w.namespace},
                  "containers": usage[(w.namespace, w.name)],
                  "window": f"{USAGE_WINDOW}s", "timestamp": kube.rfc3339(self.controller.now())}
                 for w in workers if (w.namespace, w.name) in usage]
        if name is not None and not items:
            return _error(404, f'podmetrics.metrics.k8s.io "{namespace}/{name}" not found')
        if name is not None:
            single = {"apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics", **items[0]}
            return web.json_response(single)
        return web.json_response({"apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetricsList", "items": items})

    # --- discovery ----------------------------------------------------------------------------------

    async def watch_all_endpoints(self, request: web.Request) -> web.StreamResponse:
        return await self._stream_updates(request, None)

    async def service_endpoints(self, request: web.Request) -> web.StreamResponse:
        key = ServiceKey(request.match_info["ns"], request.match_info["name"])
        if request.query.get("watch") in ("1", "true"):
            return await self._stream_updates(request, key)
        index = request.query.get("index")
        if index is not None:
            wait = _duration(request.query.get("wait", "30s"))
            await self.registry.wait_for_index(int(index), timeout=min(wait, 600))
        snapshot = self.registry.snapshot(key)
        info = self.registry.service(key)
        if info is None:
            return _error(404, f'service "{key}" not found')
        return web.json_response({"index": self.registry.index, "service": info.to_json(),
                                  "endpoints": [e.to_json() for e in getattr(snapshot, "endpoints", ())]},
                                 headers={"X-Meshd-Index": str(self.registry.index)})

    async def _stream_updates(self, request: web.Request, key: ServiceKey | None) -> web.StreamResponse:
        sidecar = request.query.get("sidecar")
        metrics = request.query.get("metrics")  # where the sidecar serves /metrics, for Prometheus' discovery
        response = await self._open_stream(request)
        if sidecar:
            self.drain.connect(sidecar, key)
            if metrics:
                self._sidecar_metrics[sidecar] = metrics
        updates = self.registry.watch(key)  # an async generator: closed below
        if key is None and request.query.get("ingress") == "1":  # a node sidecar serving the Ingress: its table too
            updates = self._with_ingress(updates)
        WATCH_SUBSCRIBERS.inc()
        try:
            async for item in _with_heartbeats(updates, HEARTBEAT_SECONDS):
                if item is None:
                    message: dict[str, Any] = {"type": "Heartbeat"}
                elif isinstance(item, Synced):
                    message = {"type": "Synced"}
                elif isinstance(item, dict):  # the Ingress table, already a message
                    message = item
                else:
                    message = update_to_json(item)
                await self._send(response, message)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            WATCH_SUBSCRIBERS.dec()
            with contextlib.suppress(RuntimeError):  # cancelled while the generator was waiting
                await updates.aclose()  # type: ignore[attr-defined]
            if sidecar:
                self.drain.disconnect(sidecar)
                if sidecar not in self.drain.sidecars:
                    self._sidecar_metrics.pop(sidecar, None)
            self._streams.discard(response)
        return response

    def _with_ingress(self, updates: AsyncIterator[Any]) -> AsyncIterator[Any]:
        wake = asyncio.Event()
        stop_controller = self.controller.watch(lambda *_: wake.set())
        stop_registry = self.registry.listen(lambda _u: wake.set())

        async def stream() -> AsyncIterator[Any]:
            try:
                async for item in ingress.merge(updates, self.ingress.updates(wake)):
                    yield item
            finally:
                stop_controller()
                stop_registry()
                with contextlib.suppress(RuntimeError):
                    await updates.aclose()  # type: ignore[attr-defined]
        return stream()

    async def drain_ack(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        try:
            sidecar, service, endpoint = str(body["sidecar"]), str(body["service"]), str(body["endpoint"])
        except KeyError as missing:
            return _error(400, f"missing field {missing.args[0]}")
        accepted = self.drain.acknowledge(sidecar, ServiceKey.parse(service), endpoint)
        # an ack for nothing that drains (late, or not from a connected sidecar) is kept nowhere
        return web.json_response({"ok": True, "accepted": accepted})

    async def listen_failure(self, request: web.Request) -> web.Response:
        """The sidecar could not listen on a port (another program holds it): a warning event on each Service."""
        body = await self._json(request)
        try:
            where = f"{body['address']}:{int(body['port'])}/{body['protocol']}"
            services, error = [ServiceKey.parse(str(s)) for s in body["services"]], str(body["error"])
        except (KeyError, TypeError, ValueError) as problem:
            return _error(400, f"bad listen failure report: {problem}")
        for key in services:
            message = f"cannot listen on {where}: {error} (the sidecar retries)"
            pod = pod_of(key)  # a pod's hostPort, else a Service's port
            kind, name = ("Pod", pod) if pod is not None else ("Service", key.name)
            log.warning("%s %s/%s: %s", kind.lower(), key.namespace, name, message)
            self.controller.events.record(kind, key.namespace, name, "Warning", "PortNotAvailable", message)
        return web.json_response({"ok": True})

    async def prometheus_targets(self, request: web.Request) -> web.Response:
        host = request.host
        groups: list[dict[str, Any]] = [
            {"targets": [host], "labels": {"meshd_component": "agent"}},
        ]
        sidecars = sorted(set(self.sidecar_targets()) | set(self._sidecar_metrics.values()))
        if sidecars:
            groups.append({"targets": sidecars, "labels": {"meshd_component": "sidecar"}})
        for worker in self.controller.pods.values():
            annotations = worker.annotations
            if annotations.get("prometheus.io/scrape") != "true" or not worker.address or not worker.ready:
                continue
            port = annotations.get("prometheus.io/port")
            if port is None:
                ports = [p.container_port for c in worker.spec.containers for p in c.ports]
                if not ports:
                    continue
                port = str(ports[0])
            groups.append({
                "targets": [f"{worker.address}:{port}"],
                "labels": {"meshd_component": "pod", "namespace": worker.namespace, "pod": worker.name,
                           "__metrics_path__": annotations.get("prometheus.io/path", "/metrics")},
            })
        return web.json_response(groups)

    # --- helpers --------------------------------------------------------------------------------------

    async def _open_stream(self, request: web.Request, *,
                           content_type: str = "application/x-ndjson") -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": content_type, "Cache-Control": "no-cache"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        response._meshd_task = asyncio.current_task()  # type: ignore[attr-defined]
        self._streams.add(response)
        return response

    @staticmethod
    async def _send(response: web.StreamResponse, message: dict[str, Any]) -> None:
        await response.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    @staticmethod
    async def _json(request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"request body is not JSON: {error}") from None
        if not isinstance(body, dict):
            raise ValueError("request body must be a JSON object")
        return body


async def _with_heartbeats(source: AsyncIterator[Any], interval: float) -> AsyncIterator[Any]:
    """Items of `source`, with None whenever nothing came for `interval` seconds."""
    pending: asyncio.Task | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(source.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield None
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield item
    finally:
        if pending is not None:
            pending.cancel()


def _duration(text: str) -> float:
    text = text.strip()
    for suffix, factor in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


__all__ = ["ApiServer", "Pod", "ReplicaSet"]

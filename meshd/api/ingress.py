"""Ingress in the Kubernetes API: v1 Ingress and IngressClass objects as the API serves them, kubectl's
columns for them, their OpenAPI types, and the feed of the routing table (with the certificates it needs) that
the node sidecar follows on its endpoint stream."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from meshd.api.timefmt import age
from meshd.controller.ingress import Conflict, backend_problems, build_table, check_certificate
from meshd.model.ingress import (
    DEFAULT_CLASS_ANNOTATION,
    INGRESS_CLASS,
    INGRESS_CONTROLLER,
    Ingress,
    IngressTable,
)
from meshd.model.objects import Secret, Service

log = logging.getLogger(__name__)
Obj = dict[str, Any]


class IngressFeed:
    """What the agent knows of Ingress beyond the objects: where it serves them (`address`, `ports`), the last
    good certificate of each Secret, and the problems to show on each Ingress (status and events)."""

    def __init__(self, controller: Any) -> None:
        self.controller = controller
        self.address = "127.0.0.1"
        self.http_port: int | None = 80
        self.https_port: int | None = 443
        self.good: dict[str, tuple[str, str]] = {}  # Secret -> its last valid (cert, key)
        self.bad: dict[str, tuple[tuple[str, str], str]] = {}  # Secret -> (the invalid data, why)
        self.reported: set[tuple[str, str]] = set()  # (ingress, message) already told as an event
        self.checked: dict[tuple[str, str], str | None] = {}  # (cert, key) -> why it is invalid (None: valid)
        self.changed = asyncio.Event()

    # --- inputs -----------------------------------------------------------------------------------------
    def ingresses(self) -> list[tuple[Ingress, float]]:
        return [(r.obj, r.created) for r in self.controller.objects.values() if isinstance(r.obj, Ingress)]

    def service(self, namespace: str, name: str) -> Service | None:
        record = self.controller.objects.get(("Service", namespace, name))
        return record.obj if record is not None else None

    def secret_tls(self, key: str) -> tuple[str, str] | None | str:
        """A kubernetes.io/tls Secret's (cert, key) PEM; None if there is no such Secret; a str: what is wrong."""
        namespace, _, name = key.partition("/")
        record = self.controller.objects.get(("Secret", namespace, name))
        if record is None:
            return None
        secret = record.obj
        if not isinstance(secret, Secret):
            return f"{key} is not a Secret"
        data = {k: v.decode(errors="replace") for k, v in secret.data.items()}
        if "tls.crt" not in data or "tls.key" not in data:
            return f"Secret {key} has no tls.crt and tls.key"
        return data["tls.crt"], data["tls.key"]

    def wanted(self) -> set[str]:
        return {t.secret for ingress, _ in self.ingresses() if ingress.served for t in ingress.tls}

    async def check_new(self) -> None:
        """Check the certificates not checked yet (off the event loop: it loads them through a file)."""
        for key in self.wanted():
            found = self.secret_tls(key)
            if isinstance(found, tuple) and found not in self.checked:
                self.checked[found] = await asyncio.to_thread(check_certificate, *found)
                if len(self.checked) > 256:  # old versions: forget the oldest
                    del self.checked[next(iter(self.checked))]

    def certificates(self) -> dict[str, tuple[str, str]]:
        """Each referenced Secret's certificate: the current one if valid, else the last valid one (kept in
        use); an invalid one is remembered with why, for the Ingress's status and an event. One not checked
        yet (check_new) counts as not there yet."""
        wanted = self.wanted()
        for key in wanted:
            found = self.secret_tls(key)
            if found is None:
                self.bad[key] = (("", ""), f"Secret {key} not found")
                continue
            if isinstance(found, str):
                self.bad[key] = (("", ""), found)
                continue
            if self.good.get(key) == found:
                self.bad.pop(key, None)
                continue
            if found not in self.checked:
                continue
            problem = self.checked[found]
            if problem is None:
                self.good[key] = found
                self.bad.pop(key, None)
            else:
                self.bad[key] = (found, f"Secret {key}: {problem}" + (
                    " (the previous certificate stays in use)" if key in self.good else ""))
        return {k: v for k, v in self.good.items() if k in wanted}

    def table(self) -> tuple[IngressTable, list[Conflict]]:
        return build_table(self.ingresses(), self.certificates())

    # --- problems, per Ingress --------------------------------------------------------------------------
    def problems(self, ingress: Ingress, conflicts: list[Conflict]) -> list[str]:
        who = f"{ingress.metadata.namespace}/{ingress.metadata.name}"
        if not ingress.served:
            return [f'ingressClassName "{ingress.class_name}" is not meshd\'s ("{INGRESS_CLASS}"): ignored']
        found = backend_problems(ingress, self.service)
        found += [f"host {c.host or '*'} path {c.path} is already served by Ingress {c.winner} (older): ignored"
                  for c in conflicts if c.loser == who]
        found += [self.bad[t.secret][1] for t in ingress.tls if t.secret in self.bad]
        return found

    def report(self, conflicts: list[Conflict]) -> None:
        """Each new problem of an Ingress as a Warning event (once)."""
        now: set[tuple[str, str]] = set()
        for ingress, _ in self.ingresses():
            who = f"{ingress.metadata.namespace}/{ingress.metadata.name}"
            for message in self.problems(ingress, conflicts):
                now.add((who, message))
                if (who, message) not in self.reported:
                    reason = ("IngressIgnored" if not ingress.served else "InvalidCertificate"
                              if "Secret" in message else "Conflict" if "already served" in message
                              else "BackendNotFound")
                    self.controller.events.record("Ingress", ingress.metadata.namespace, ingress.metadata.name,
                                                  "Warning", reason, message)
                    log.warning("Ingress %s: %s", who, message)
        self.reported = now

    async def updates(self, wake: asyncio.Event) -> AsyncIterator[dict[str, Any]]:
        """The table as a stream message, now and whenever it changes (checked each time `wake` is set)."""
        last: IngressTable | None = None
        while True:
            await self.check_new()
            table, conflicts = self.table()
            self.report(conflicts)
            if table != last:
                last = table
                yield table.to_json()
            await wake.wait()
            wake.clear()


async def merge(updates: AsyncIterator[Any], extra: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The items of two async iterators as they come; ends when either ends or fails (the client reconnects)."""
    queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue()

    async def pump(source: AsyncIterator[Any]) -> None:
        try:
            async for item in source:
                await queue.put((False, item))
        except Exception:  # a bug must not end the stream silently
            log.exception("the Ingress feed failed")
            raise
        finally:
            queue.put_nowait((True, None))

    tasks = [asyncio.ensure_future(pump(updates)), asyncio.ensure_future(pump(extra))]
    try:
        while True:
            ended, item = await queue.get()
            if ended:
                return
            yield item
    finally:
        for task in tasks:
            task.cancel()


# --- as the API serves them -------------------------------------------------------------------------------
def ingress_object(record: Any, metadata: Obj, feed: IngressFeed) -> Obj:
    obj: Ingress = record.obj
    spec = copy.deepcopy(dict(obj.raw.get("spec") or {}))
    if obj.class_name is None:  # the default class, as the API server's DefaultIngressClass admission sets it
        spec["ingressClassName"] = INGRESS_CLASS
    status: Obj = {"loadBalancer": {}}
    if obj.served:
        ports = [p for p in (feed.http_port, feed.https_port if obj.tls else None) if p]
        problems = feed.problems(obj, feed.table()[1])
        entry: Obj = {"ip": feed.address, "ports": [{"port": p, "protocol": "TCP"} for p in ports]}
        if problems and entry["ports"]:
            entry["ports"][-1]["error"] = "; ".join(problems)[:1024]
        status["loadBalancer"]["ingress"] = [entry]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata, "spec": spec,
            "status": status}


def ingress_class(created: str | None) -> Obj:
    """meshd's IngressClass, the default one (built in)."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": INGRESS_CLASS, "uid": "meshd-ingressclass", "creationTimestamp": created,
                         "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
            "spec": {"controller": INGRESS_CONTROLLER}}


def ingress_row(obj: Obj, now: datetime, wide: bool) -> list[str]:
    """kubectl's columns: NAME CLASS HOSTS ADDRESS PORTS AGE."""
    spec, meta = obj.get("spec") or {}, obj.get("metadata") or {}
    hosts = [r.get("host") or "*" for r in spec.get("rules") or []] or ["*"]
    shown = ",".join(hosts[:4]) + (f" + {len(hosts) - 4} more..." if len(hosts) > 4 else "")
    lbs = (obj.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
    address = ",".join(i.get("ip") or i.get("hostname") or "" for i in lbs)
    ports = "80, 443" if spec.get("tls") else "80"
    return [meta.get("name", ""), spec.get("ingressClassName") or "<none>", shown, address, ports,
            age(meta.get("creationTimestamp"), now)]


def ingress_class_row(obj: Obj, now: datetime, wide: bool) -> list[str]:
    meta = obj.get("metadata") or {}
    return [meta.get("name", ""), (obj.get("spec") or {}).get("controller", ""), "<none>",
            age(meta.get("creationTimestamp"), now)]


OPENAPI_TYPES: dict[str, tuple[str, str, dict[str, str]]] = {
    "Ingress": ("networking", "A collection of rules that allow inbound connections to reach Services.", {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta", "spec": "IngressSpec",
        "status": "IngressStatus"}),
    "IngressSpec": ("networking", "The Ingress's rules.", {
        "ingressClassName": "string", "defaultBackend": "IngressBackend", "rules": "[IngressRule]",
        "tls": "[IngressTLS]"}),
    "IngressBackend": ("networking", "A Service and port.", {"service": "IngressServiceBackend"}),
    "IngressServiceBackend": ("networking", "A Service by name and its port.", {
        "name": "string", "port": "ServiceBackendPort"}),
    "ServiceBackendPort": ("networking", "A port by number or name.", {"number": "integer", "name": "string"}),
    "IngressRule": ("networking", "A host and its paths.", {"host": "string", "http": "HTTPIngressRuleValue"}),
    "HTTPIngressRuleValue": ("networking", "Paths.", {"paths": "[HTTPIngressPath]"}),
    "HTTPIngressPath": ("networking", "A path and its backend.", {
        "path": "string", "pathType": "string", "backend": "IngressBackend"}),
    "IngressTLS": ("networking", "Hosts served with a Secret's certificate.", {
        "hosts": "[string]", "secretName": "string"}),
    "IngressStatus": ("networking", "Where the Ingress is served.", {"loadBalancer": "object"}),
    "IngressClass": ("networking", "A class of Ingress and the controller that serves it.", {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta", "spec": "IngressClassSpec"}),
    "IngressClassSpec": ("networking", "The controller.", {"controller": "string", "parameters": "object"}),
}
ServiceLookup = Callable[[str, str], Service | None]

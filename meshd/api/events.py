"""Events as both APIs serve them: `v1 Event` (involvedObject, message, source...) and `events.k8s.io/v1
Event` (regarding, note, reportingController, eventTime...), mapped from the one event log of the controller as
the API server converts between them; and create, update, patch and delete of either (what client-go's event
recorder sends), written to the store as v1 Events. The mapping is pure; the handler is thin."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from meshd.api import status as api_status
from meshd.api.kinds import EVENT, EVENTS_V1, Kind
from meshd.api.patching import JSON_PATCH, MERGE, STRATEGIC, apply_patch, parse_body
from meshd.controller.loop import Controller
from meshd.store import AlreadyExists, Conflict, NotFound

MAX_TEXT = 1024  # a note or message is cut there, as the API server limits a note


def micro_time(text: Any) -> str | None:
    """An RFC 3339 timestamp ("2026-01-02T03:04:05Z") as a MicroTime ("2026-01-02T03:04:05.000000Z")."""
    if not text:
        return None
    return str(text).replace("Z", ".000000Z") if "." not in str(text) else str(text)


def to_events_v1(event: dict[str, Any]) -> dict[str, Any]:
    """A v1 Event as events.k8s.io/v1 shows it (the API server's conversion). Pure."""
    source = event.get("source") or {}
    first, last = event.get("firstTimestamp"), event.get("lastTimestamp")
    converted: dict[str, Any] = {
        "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": dict(event.get("metadata") or {}),
        "eventTime": event.get("eventTime") or micro_time(first or last or
                                                          (event.get("metadata") or {}).get("creationTimestamp")),
        "regarding": dict(event.get("involvedObject") or {}),
        "note": event.get("message", ""), "reason": event.get("reason", ""), "type": event.get("type", "Normal"),
        "reportingController": event.get("reportingComponent") or source.get("component", ""),
        "reportingInstance": event.get("reportingInstance") or source.get("host") or source.get("component", ""),
        "deprecatedSource": source, "deprecatedFirstTimestamp": first, "deprecatedLastTimestamp": last,
        "deprecatedCount": event.get("count", 1),
    }
    if event.get("action"):
        converted["action"] = event["action"]
    return converted


def recorded_fields(kind: Kind, body: dict[str, Any]) -> dict[str, str]:
    """What the event log keeps of a created Event of either API: the object it regards (kind, name), type,
    reason, message and reporting component; ValueError names what is missing or wrong. Pure."""
    events_api = kind.group == "events.k8s.io"
    regarding = body.get("regarding" if events_api else "involvedObject")
    if not isinstance(regarding, dict) or not regarding.get("kind") or not regarding.get("name"):
        field = "regarding" if events_api else "involvedObject"
        raise ValueError(f"Event is invalid: {field}: Required value: the object the event is about (kind, name)")
    type_ = body.get("type") or "Normal"
    if type_ not in ("Normal", "Warning"):
        raise ValueError(f'Event is invalid: type: Unsupported value: "{type_}": supported values: "Normal", '
                         f'"Warning"')
    reason = str(body.get("reason") or "")
    if not reason:
        raise ValueError("Event is invalid: reason: Required value")
    message = str(body.get("note" if events_api else "message") or "")[:MAX_TEXT]
    source = body.get("deprecatedSource" if events_api else "source") or {}
    component = str(body.get("reportingController" if events_api else "reportingComponent") or
                    (source.get("component") if isinstance(source, dict) else "") or "")
    return {"kind": str(regarding["kind"]), "name": str(regarding["name"]), "type": type_, "reason": reason,
            "message": message, "component": component}


def from_events_v1(body: dict[str, Any]) -> dict[str, Any]:
    """An events.k8s.io/v1 Event as the v1 Event the store keeps (the API server's conversion back). Pure."""
    source = body.get("deprecatedSource") or {"component": str(body.get("reportingController") or "")}
    converted = {
        "apiVersion": "v1", "kind": "Event", "metadata": dict(body.get("metadata") or {}),
        "involvedObject": dict(body.get("regarding") or {}), "reason": body.get("reason", ""),
        "message": str(body.get("note") or "")[:MAX_TEXT], "type": body.get("type") or "Normal", "source": source,
        "firstTimestamp": body.get("deprecatedFirstTimestamp"), "lastTimestamp": body.get("deprecatedLastTimestamp"),
        "count": body.get("deprecatedCount") or 1, "eventTime": body.get("eventTime"),
        "reportingComponent": body.get("reportingController"), "reportingInstance": body.get("reportingInstance"),
        "action": body.get("action"), "series": body.get("series"), "related": body.get("related"),
    }
    return {k: v for k, v in converted.items() if v is not None}


def stored_event(kind: Kind, namespace: str, name: str, body: dict[str, Any], now: str) -> dict[str, Any]:
    """The v1 Event the store keeps for a created or replaced Event of either API; ValueError when it is invalid
    (recorded_fields) or names another object than the request. Pure."""
    recorded_fields(kind, body)
    meta = body.get("metadata") or {}
    if str(meta.get("name") or name) != name:
        raise ValueError(f'the name of the object ({meta.get("name")}) does not match the name on the URL ({name})')
    if str(meta.get("namespace") or namespace) != namespace:
        raise ValueError(f'the namespace of the object ({meta.get("namespace")}) does not match the namespace on '
                         f'the URL ({namespace})')
    obj = from_events_v1(body) if kind.group == "events.k8s.io" else {**json.loads(json.dumps(body)),
                                                                      "apiVersion": "v1", "kind": "Event"}
    obj["metadata"] = {k: v for k, v in dict(obj.get("metadata") or {}).items()
                       if k not in ("uid", "creationTimestamp", "generation", "managedFields")} | {
        "name": name, "namespace": namespace}
    obj["involvedObject"] = {"namespace": namespace, **dict(obj.get("involvedObject") or {})}
    obj["type"] = obj.get("type") or "Normal"
    obj["message"] = str(obj.get("message") or "")[:MAX_TEXT]
    if not (obj.get("lastTimestamp") or obj.get("firstTimestamp") or obj.get("eventTime")):
        obj["firstTimestamp"] = obj["lastTimestamp"] = now  # what the event TTL counts from
    return obj


def add_routes(router: web.UrlDispatcher, controller: Controller, show: Any) -> None:
    """Events of either API (v1 or events.k8s.io/v1) written into the store: POST (what client-go's event recorder
    sends), PUT, PATCH and DELETE; `show(kind, namespace, name)` answers the event as GET shows it. Registered
    before the generic write routes."""

    def kind_of(request: web.Request) -> Kind:
        return EVENTS_V1 if request.path.startswith("/apis/") else EVENT

    async def body_of(request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError as error:
            return api_status.response(400, f"the request body is not JSON: {error}")
        if not isinstance(body, dict):
            return api_status.response(400, "the request body must be an Event object")
        return body

    def answer(kind: Kind, namespace: str, name: str, code: int) -> web.Response:
        controller._notify("Event", namespace, name)  # wakes the event watches
        shown = show(kind, namespace, name) or {"metadata": {"name": name, "namespace": namespace,
                                                              "creationTimestamp": _now()}}
        return web.json_response(shown, status=code)

    async def create(request: web.Request) -> web.Response:
        kind, namespace = kind_of(request), request.match_info["ns"]
        body = await body_of(request)
        if isinstance(body, web.Response):
            return body
        name = str((body.get("metadata") or {}).get("name") or "")
        if not name:
            return api_status.response(422, "Event is invalid: metadata.name: Required value: name is required")
        try:
            obj = stored_event(kind, namespace, name, body, _now())
        except ValueError as error:
            return api_status.response(422, str(error))
        obj["metadata"].pop("resourceVersion", None)
        try:
            await controller.store.create(obj)
        except AlreadyExists:
            return api_status.response(409, f'events "{name}" already exists', reason="AlreadyExists")
        return answer(kind, namespace, name, 201)

    async def write(kind: Kind, namespace: str, name: str, body: dict[str, Any]) -> web.Response:
        try:
            obj = stored_event(kind, namespace, name, body, _now())
        except ValueError as error:
            return api_status.response(422, str(error))
        if controller.store.get("Event", namespace, name) is None:
            return api_status.response(404, f'events "{name}" not found', reason="NotFound")
        try:
            await controller.store.update(obj)
        except NotFound:
            return api_status.response(404, f'events "{name}" not found', reason="NotFound")
        except Conflict:
            return api_status.response(409, f'Operation cannot be fulfilled on events "{name}": the object has been '
                                            'modified; please apply your changes to the latest version and try again',
                                       reason="Conflict")
        return answer(kind, namespace, name, 200)

    async def replace(request: web.Request) -> web.Response:
        body = await body_of(request)
        if isinstance(body, web.Response):
            return body
        return await write(kind_of(request), request.match_info["ns"], request.match_info["name"], body)

    async def patch(request: web.Request) -> web.Response:
        kind, namespace, name = kind_of(request), request.match_info["ns"], request.match_info["name"]
        if request.content_type not in (MERGE, JSON_PATCH, STRATEGIC):
            return api_status.response(415, f"the body of the request was in an unknown format - accepted media "
                                            f"types include: {', '.join((MERGE, JSON_PATCH, STRATEGIC))}")
        live = show(kind, namespace, name)
        stored = controller.store.get("Event", namespace, name)
        if live is None or stored is None:
            return api_status.response(404, f'events "{name}" not found', reason="NotFound")
        patched = apply_patch(request.content_type, live, parse_body(request.content_type, await request.read()))
        if not isinstance(patched, dict):
            return api_status.response(400, "the patched object is not an Event")
        patched.setdefault("metadata", {})["resourceVersion"] = stored["metadata"]["resourceVersion"]  # read with live
        return await write(kind, namespace, name, patched)

    async def delete(request: web.Request) -> web.Response:
        kind, namespace, name = kind_of(request), request.match_info["ns"], request.match_info["name"]
        try:
            gone = await controller.store.delete("Event", namespace, name)
        except NotFound:
            return api_status.response(404, f'events "{name}" not found', reason="NotFound")
        controller._notify("Event", namespace, name)
        body = api_status.success(name=name, kind="events", uid=str(gone["metadata"].get("uid", "")))
        if kind.group:
            body["details"]["group"] = kind.group
        return web.json_response(body)

    for prefix in ("/api/v1", "/apis/events.k8s.io/v1"):
        router.add_post(prefix + "/namespaces/{ns}/events", create)
        router.add_put(prefix + "/namespaces/{ns}/events/{name}", replace)
        router.add_patch(prefix + "/namespaces/{ns}/events/{name}", patch)
        router.add_delete(prefix + "/namespaces/{ns}/events/{name}", delete)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


__all__ = ["EVENTS_V1", "add_routes", "from_events_v1", "micro_time", "recorded_fields", "stored_event",
           "to_events_v1"]

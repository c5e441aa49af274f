"""Events as both APIs serve them: `v1 Event` (involvedObject, message, source...) and `events.k8s.io/v1
Event` (regarding, note, reportingController, eventTime...), mapped from the one event log of the controller as
the API server converts between them; and `create` of either (what client-go's event recorder sends), recorded
in that log. The mapping is pure; the handler is thin."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from meshd.api import status as api_status
from meshd.api.kinds import EVENT, EVENTS_V1, Kind
from meshd.controller.loop import Controller

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


def add_routes(router: web.UrlDispatcher, controller: Controller, show: Any) -> None:
    """POST of an Event (v1 or events.k8s.io/v1) into the controller's event log; `show(kind, namespace,
    name)` answers the event as GET shows it. Registered before the generic write routes."""

    async def create(request: web.Request) -> web.Response:
        kind = EVENTS_V1 if request.path.startswith("/apis/") else EVENT
        namespace = request.match_info["ns"]
        try:
            body = json.loads(await request.read())
        except ValueError as error:
            return api_status.response(400, f"the request body is not JSON: {error}")
        if not isinstance(body, dict):
            return api_status.response(400, "the request body must be an Event object")
        meta = body.get("metadata") or {}
        name = str(meta.get("name") or "")
        if not name:
            return api_status.response(422, "Event is invalid: metadata.name: Required value: name is required")
        try:
            fields = recorded_fields(kind, body)
        except ValueError as error:
            return api_status.response(422, str(error))
        if any(e.event_name == name for e in controller.events.in_namespace(namespace)):
            return api_status.response(409, f'events "{name}" already exists', reason="AlreadyExists")
        controller.events.record(fields["kind"], namespace, fields["name"], fields["type"], fields["reason"],
                                 fields["message"], event_name=name, component=fields["component"] or "meshd")
        controller._notify("Event", namespace, name)  # wakes the event watches
        shown = show(kind, namespace, name) or {"metadata": {"name": name, "namespace": namespace,
                                                              "creationTimestamp": _now()}}
        return web.json_response(shown, status=201)

    router.add_post("/api/v1/namespaces/{ns}/events", create)
    router.add_post("/apis/events.k8s.io/v1/namespaces/{ns}/events", create)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


__all__ = ["EVENTS_V1", "add_routes", "micro_time", "recorded_fields", "to_events_v1"]

"""Errors as a Kubernetes API server gives them: a `v1 Status` JSON body whatever went wrong, so kubectl and the
client libraries print the server's message ("Error from server (NotFound): pods "x" not found") instead of
failing to decode a plain-text page."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from meshd.manifests import ManifestError

# the reasons metav1.StatusReason gives each code (AlreadyExists and Conflict share 409: callers pick)
REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
    507: "InsufficientStorage",
}

_NAMED = re.compile(r'^(?P<resource>[a-z.]+) "(?P<name>[^"]*)"')  # 'pods "web" not found'


def status(code: int, message: str, *, reason: str | None = None, details: dict[str, Any] | None = None,
           **extra: Any) -> dict[str, Any]:
    """A `v1 Status` failure; details (name, kind, causes) are given or read from a 'pods "x" ...' message."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": message, "reason": reason or REASONS.get(code, "Unknown"), "code": code,
                            **extra}
    if details is None:
        named = _NAMED.match(message)
        details = {"name": named["name"], "kind": named["resource"]} if named else None
    if details:
        body["details"] = details
    return body


def success(*, name: str = "", kind: str = "", uid: str = "") -> dict[str, Any]:
    """The Status a DELETE answers when it does not return the object."""
    details = {k: v for k, v in (("name", name), ("kind", kind), ("uid", uid)) if v}
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def response(code: int, message: str, *, reason: str | None = None, details: dict[str, Any] | None = None,
             **extra: Any) -> web.Response:
    return web.json_response(status(code, message, reason=reason, details=details, **extra), status=code)


def invalid(error: ManifestError) -> dict[str, Any]:
    """A manifest meshd cannot accept as a 422 Invalid, its field path as the cause (as the API server's
    field.ErrorList)."""
    cause: dict[str, Any] = {"reason": "FieldValueInvalid", "message": error.problem}
    if error.path:
        cause["field"] = error.field_path
    details: dict[str, Any] = {"causes": [cause]}
    if error.name:
        details["name"] = error.name
    if error.kind:
        details["kind"] = error.kind.lower() + "s"
    return status(422, str(error), details=details)


def from_http_exception(error: web.HTTPException, method: str, path: str) -> web.Response:
    """aiohttp's own 404/405/413... as a Status (its text answers would break every Kubernetes client)."""
    code = error.status
    headers = {k: v for k, v in error.headers.items() if k.lower() == "allow"}  # 405's Allow
    if code == 404 and (error.text or "").strip() in ("", "404: Not Found"):
        message = "the server could not find the requested resource"
    elif code == 405:
        message = f"the server does not allow this method on the requested resource ({method} {path})"
    else:
        message = (error.text or error.reason or "").strip()
        message = message.split(": ", 1)[1] if re.match(r"^\d{3}: ", message) else message
    if error.content_type == "application/json" and error.text:
        try:
            parsed = json.loads(error.text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and parsed.get("kind") == "Status":
            return web.Response(text=error.text, status=code, content_type="application/json")
    body = status(code, message, details={})
    body.pop("details", None)
    return web.json_response(body, status=code, headers=headers)


__all__ = ["REASONS", "from_http_exception", "invalid", "response", "status", "success"]

"""The field manager of a write request and the managedFields it leaves (the I/O side of meshd.api.fieldsets):
`?fieldManager=` or, as the API server does without one, the User-Agent's product ("kubectl" of
"kubectl/v1.37.0 (linux/amd64) ..."); a client that sends metadata.managedFields itself (kubectl's upgrade of a
client-side-applied object to server-side apply) has them taken as given, `[{}]` clearing them."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from meshd.api import fieldsets
from meshd.api import status as api_status
from meshd.api.kinds import Kind
from meshd.api.patching import PatchError

MAX_MANAGER = 128


def field_manager(request: web.Request, kind: Kind, operation: str, subresource: str = "") -> fieldsets.Manager:
    name = request.query.get("fieldManager") or request.headers.get("User-Agent", "").split("/")[0].strip()
    if len(name) > MAX_MANAGER or not name.isprintable():
        raise PatchError(f"fieldManager: Invalid value: {name[:MAX_MANAGER]!r}: must be printable and at most "
                         f"{MAX_MANAGER} characters")
    return fieldsets.Manager(name or "unknown", operation, kind.api_version,
                             time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), subresource)


def managed_after_update(request: web.Request, kind: Kind, live: dict[str, Any] | None, new: dict[str, Any], *,
                         subresource: str = "") -> list[dict[str, Any]]:
    """managedFields after an Update (create, replace, a patch, scale) from `live` to `new`."""
    old_entries = ((live or {}).get("metadata") or {}).get("managedFields")
    sent = (new.get("metadata") or {}).get("managedFields")
    entries = sent if sent and sent != old_entries else old_entries
    try:
        return fieldsets.update(live, new, entries, field_manager(request, kind, "Update", subresource))
    except ValueError as error:
        raise PatchError(str(error)) from None


def conflict_response(kind: Kind, name: str, conflict: fieldsets.ApplyConflict) -> web.Response:
    """409 Conflict as the API server answers an apply that would take fields others own."""
    details: dict[str, Any] = {"name": name, "kind": kind.plural,
                               "causes": fieldsets.conflict_causes(conflict.conflicts)}
    if kind.group:
        details["group"] = kind.group
    return api_status.response(409, str(conflict), reason="Conflict", details=details)


__all__ = ["conflict_response", "field_manager", "managed_after_update"]

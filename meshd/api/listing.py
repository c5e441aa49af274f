"""What a list, get or watch request asks for (selectors, limit/continue, Table or object, watch options) and the
bodies that answer it: one pure step between the request's query and the objects the API has."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from meshd.api import fields, paging, table
from meshd.api.kinds import Kind
from meshd.model.selectors import Requirement, parse_selector, selects

TRUE = ("1", "true")


@dataclass(frozen=True)
class ListQuery:
    labels: tuple[Requirement, ...] = ()
    fields: tuple[fields.FieldRequirement, ...] = ()
    limit: int | None = None
    continue_token: str = ""
    table: str | None = None  # the Table version asked for ("v1"), None for objects
    include_object: str = "Metadata"
    watch: bool = False
    resource_version: str = ""
    timeout_seconds: float | None = None
    bookmarks: bool = False
    send_initial_events: bool = False


def parse_query(kind: Kind, query: Mapping[str, str], accept: str) -> ListQuery:
    """The request's options; ValueError (a 400 BadRequest) for any it cannot honour, never a silent "all"."""
    requirements = fields.parse_field_selector(query.get("fieldSelector", ""))
    fields.check_supported(f"{kind.kind}.{kind.group}" if f"{kind.kind}.{kind.group}" in fields.FIELDS else kind.kind,
                           requirements)
    token = query.get("continue", "")
    if token:
        paging.decode_token(token)  # a token meshd did not make is a 400 now, not on the next page
    timeout = query.get("timeoutSeconds")
    try:
        timeout_seconds = float(timeout) if timeout else None
    except ValueError:
        timeout_seconds = math.nan
    if timeout_seconds is not None and not 0 <= timeout_seconds < math.inf:
        raise ValueError(f"timeoutSeconds: must be a number of seconds, got {timeout!r}")
    include = query.get("includeObject", "Metadata")
    if include not in table.INCLUDE_OBJECT:
        raise ValueError(f"includeObject: unsupported value {include!r}, one of: {', '.join(table.INCLUDE_OBJECT)}")
    return ListQuery(
        labels=parse_selector(query.get("labelSelector", "")),
        fields=requirements,
        limit=paging.parse_limit(query.get("limit")),
        continue_token=token,
        table=table.table_version(accept),
        include_object=include,
        watch=query.get("watch", "").lower() in TRUE,
        resource_version=query.get("resourceVersion", ""),
        timeout_seconds=timeout_seconds,
        bookmarks=query.get("allowWatchBookmarks", "").lower() in TRUE,
        send_initial_events=query.get("sendInitialEvents", "").lower() in TRUE,
    )


def selected(query: ListQuery, obj: dict[str, Any]) -> bool:
    """Whether the object passes the label and the field selector."""
    return selects(query.labels, (obj.get("metadata") or {}).get("labels")) and fields.matches(query.fields, obj)


def list_body(kind: Kind, query: ListQuery, objects: list[dict[str, Any]], *, resource_version: str,
              now: datetime) -> dict[str, Any]:
    """The answer to a list: the selected objects, one page of them, as a typed list (PodList) or a Table."""
    page = paging.paginate([o for o in objects if selected(query, o)], limit=query.limit,
                           token=query.continue_token, resource_version=resource_version)
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if page.continue_token:
        metadata.update({"continue": page.continue_token, "remainingItemCount": page.remaining})
    if query.table:
        return table.table(kind, page.items, now, include_object=query.include_object, list_metadata=metadata,
                           version=query.table)
    return {"apiVersion": kind.api_version, "kind": f"{kind.kind}List", "metadata": metadata, "items": page.items}


def object_body(kind: Kind, query: ListQuery, obj: dict[str, Any], *, now: datetime) -> dict[str, Any]:
    """The answer to a get (or a watch event's object): the object, or a one-row Table."""
    if query.table:
        return table.table(kind, [obj], now, include_object=query.include_object, version=query.table)
    return obj


__all__ = ["ListQuery", "list_body", "object_body", "parse_query", "selected"]

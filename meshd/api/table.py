"""`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`: lists and objects as the `meta.k8s.io/v1 Table`
kubectl prints (`kubectl get`), with the columns meshd.api.columns computes for `meshd get` too. Pure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from meshd.api.columns import COLUMNS
from meshd.api.kinds import Kind

INCLUDE_OBJECT = ("None", "Metadata", "Object")


def table_version(accept: str) -> str | None:
    """The Table version ("v1", "v1beta1") when the Accept header asks for a Table before plain JSON, else None."""
    for media in accept.split(","):
        base, *rest = (p.strip() for p in media.split(";"))
        params = dict(p.partition("=")[::2] for p in rest)
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") in ("v1",
                                                                                                    "v1beta1"):
            return params["v"]
        if base in ("application/json", "*/*", "application/*") and "as" not in params:
            return None
    return None


def _column_name(header: str) -> str:
    """ "CLUSTER-IP" -> "Cluster-IP", "PORT(S)" -> "Port(s)" (kubectl prints them upper-cased again)."""
    return " ".join("-".join(p if p == "IP" else p.capitalize() for p in w.split("-")) for w in header.split(" "))


def column_definitions(kind: Kind) -> list[dict[str, Any]]:
    base, extra, _ = COLUMNS[kind.kind]
    return [{"name": _column_name(h), "type": "string", "format": "name" if h == "NAME" else "",
             "description": "", "priority": 0 if i < len(base) else 1}
            for i, h in enumerate(base + extra)]


def _row_object(obj: dict[str, Any], include: str) -> dict[str, Any] | None:
    if include == "Object":
        return obj
    if include == "Metadata":
        return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}
    return None


def table(kind: Kind, objects: list[dict[str, Any]], now: datetime, *, include_object: str = "Metadata",
          list_metadata: dict[str, Any] | None = None, version: str = "v1") -> dict[str, Any]:
    """A Table of `objects` (every column, the -o wide ones at priority 1); include_object as the query's
    includeObject (None, Metadata, Object). Raises ValueError for another includeObject."""
    if include_object not in INCLUDE_OBJECT:
        raise ValueError(f"includeObject: unsupported value {include_object!r}, one of: {', '.join(INCLUDE_OBJECT)}")
    compute = COLUMNS[kind.kind][2]
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": compute(obj, now, True)}
        embedded = _row_object(obj, include_object)
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    return {"kind": "Table", "apiVersion": f"meta.k8s.io/{version}", "metadata": list_metadata or {},
            "columnDefinitions": column_definitions(kind), "rows": rows}


__all__ = ["column_definitions", "table", "table_version"]

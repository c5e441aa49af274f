"""Printing objects: `-o json|yaml|name` and tables, as kubectl prints them (pure: objects -> str)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from meshd.cli import tables
from meshd.cli.kinds import Kind, kind_of
from meshd.cli.tabwriter import TableWriter

Obj = dict[str, Any]
FORMATS = ("wide", "json", "yaml", "name", "jsonpath=TEMPLATE", "custom-columns=SPEC")


def check_format(value: str | None) -> str | None:
    """The -o value if meshd can print it; raises ValueError naming the choices otherwise."""
    if value is None or value in FORMATS[:4]:
        return value
    kind, sep, arg = value.partition("=")
    if kind in ("jsonpath", "custom-columns") and sep and arg:
        from meshd.cli.jsonpath import parse_custom_columns, render_template

        if kind == "custom-columns":
            parse_custom_columns(arg)
        else:
            render_template(arg, {})  # parses the template (an empty object gives empty output)
        return value
    raise ValueError(
        f"unable to match a printer suitable for the output format {value!r}, allowed formats are: {', '.join(FORMATS)}"
    )


def with_type(kind: Kind, obj: Obj) -> Obj:
    """The object with apiVersion and kind set (list items from the API may omit them, as in Kubernetes)."""
    if obj.get("kind") and obj.get("apiVersion"):
        return obj
    return {"apiVersion": kind.api_version, "kind": kind.kind, **obj}


def as_list(items: list[Obj]) -> Obj:
    """A `v1 List`, as kubectl prints several objects."""
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=4, ensure_ascii=False)


def to_yaml(obj: Any) -> str:
    import yaml  # only when asked: keeps `meshd get` start-up fast

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(obj, Dumper=dumper, default_flow_style=False, sort_keys=True, allow_unicode=True).rstrip(
        "\n"
    )


def name_line(kind: Kind, obj: Obj) -> str:
    """`-o name`: "deployment.apps/web"."""
    return f"{kind.display}/{(obj.get('metadata') or {}).get('name', '')}"


def render_document(obj: Any, fmt: str) -> str:
    return to_json(obj) if fmt == "json" else to_yaml(obj)


def render_objects(
    groups: list[tuple[Kind, list[Obj]]],
    fmt: str | None,
    now: datetime,
    *,
    all_namespaces: bool = False,
    single: bool = False,
    headers: bool = True,
    show_labels: bool = False,
) -> str:
    """Objects grouped by kind in the requested format; `single` prints one object rather than a List.

    Tables: one per kind, blank line between, names prefixed by kind when there are several kinds.
    """
    if fmt in ("json", "yaml"):
        typed = [with_type(kind, o) for kind, objs in groups for o in objs]
        doc = typed[0] if single and len(typed) == 1 else as_list(typed)
        return render_document(doc, fmt)
    if fmt == "name":
        return "\n".join(name_line(kind, o) for kind, objs in groups for o in objs)
    if fmt and fmt.startswith("jsonpath="):
        from meshd.cli.jsonpath import render_template

        typed = [with_type(kind, o) for kind, objs in groups for o in objs]
        return render_template(
            fmt.partition("=")[2], typed[0] if single and len(typed) == 1 else as_list(typed)
        )
    if fmt and fmt.startswith("custom-columns="):
        from meshd.cli.jsonpath import custom_column_rows

        objs = [o for _, group in groups for o in group]
        return (
            TableWriter().render(custom_column_rows(fmt.partition("=")[2], objs, headers=headers))
            if objs
            else ""
        )
    blocks = []
    several = len(groups) > 1
    for kind, objs in groups:
        if not objs:
            continue
        rows = tables.table_rows(
            kind,
            objs,
            now,
            wide=fmt == "wide",
            all_namespaces=all_namespaces,
            prefix_kind=several,
            headers=headers,
            show_labels=show_labels,
        )
        blocks.append(TableWriter().render(rows))
    return "\n\n".join(blocks)


def object_kind(obj: Obj, default: Kind) -> Kind:
    return kind_of(obj) or default

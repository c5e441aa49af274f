"""`meshd get` and `meshd describe`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import click

from meshd.cli import describe as describers
from meshd.cli.client import ApiClient, ApiError
from meshd.cli.common import (
    CliError,
    api_option,
    client,
    get_object,
    list_objects,
    namespace_option,
    namespace_or_default,
    now,
)
from meshd.cli.kinds import ALL, DEPLOYMENT, ENDPOINTS, EVENT, POD, REPLICASET, SERVICE, Kind, resolve_kind
from meshd.cli.output import check_format, name_line, render_document, render_objects, with_type
from meshd.cli.tables import row as table_row
from meshd.cli.tables import table_rows
from meshd.cli.tabwriter import TableWriter

Obj = dict[str, Any]


def parse_targets(resource: str, names: tuple[str, ...]) -> list[tuple[Kind, list[str]]]:
    """`pods`, `pods,svc`, `all`, `pods web-1 web-2`, `deploy/web svc/web` -> [(kind, names)]."""
    if "/" in resource:
        targets: dict[str, tuple[Kind, list[str]]] = {}
        for item in (resource, *names):
            kind_text, sep, name = item.partition("/")
            if not sep or not name:
                raise CliError(
                    "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form"
                )
            kind = resolve_kind(kind_text)
            targets.setdefault(kind.kind, (kind, []))[1].append(name)
        return list(targets.values())
    kinds: list[Kind] = []
    for text in resource.split(","):
        for kind in ALL if text.strip().lower() == "all" else (resolve_kind(text),):
            if kind not in kinds:
                kinds.append(kind)
    if names and len(kinds) > 1:
        raise CliError("a resource name may only be given with a single resource type")
    return [(kind, list(names)) for kind in kinds]


def _output_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from meshd.cli.jsonpath import JsonPathError

    try:
        return check_format(value)
    except (ValueError, JsonPathError) as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.argument("resource")
@click.argument("names", nargs=-1)
@namespace_option
@click.option("-A", "--all-namespaces", is_flag=True, help="List across every namespace.")
@click.option("-l", "--selector", default=None, help="Label selector, e.g. app=web,tier!=cache.")
@click.option(
    "-o",
    "--output",
    default=None,
    callback=_output_option,
    help="wide, json, yaml, name, jsonpath=TEMPLATE or custom-columns=NAME:.PATH,...",
)
@click.option("-w", "--watch", is_flag=True, help="After listing, print changes as they happen.")
@click.option("--no-headers", is_flag=True, help="Omit the header row.")
@click.option("--show-labels", is_flag=True, help="Add a LABELS column.")
@api_option
def get(
    resource: str,
    names: tuple[str, ...],
    namespace: str | None,
    all_namespaces: bool,
    selector: str | None,
    output: str | None,
    watch: bool,
    no_headers: bool,
    show_labels: bool,
    api: str | None,
) -> None:
    """List objects (pods, deployments, replicasets, services, endpoints, events, all) as tables or -o json|yaml."""
    agent = client(api)
    targets = parse_targets(resource, names)
    ns = None if all_namespaces and not names else _ns(namespace)
    if watch and len(targets) != 1:
        raise CliError("you may only specify a single resource type with --watch")
    groups: list[tuple[Kind, list[Obj]]] = []
    errors: list[str] = []
    for kind, wanted in targets:
        if wanted:
            objs = []
            for name in wanted:
                try:
                    objs.append(get_object(agent, kind, _ns(namespace), name))
                except CliError as exc:
                    errors.append(str(exc))
        else:
            objs = list_objects(agent, kind, ns, selector=selector)
        groups.append((kind, objs))
    single = len(targets) == 1 and len(targets[0][1]) == 1
    view = View(output, all_namespaces and not names, show_labels)
    text = render_objects(
        groups,
        output,
        now(),
        all_namespaces=view.all_namespaces,
        single=single,
        headers=not no_headers,
        show_labels=show_labels,
    )
    writer = TableWriter()
    if watch and output in (None, "wide"):
        kind = targets[0][0]
        rows = table_rows(kind, groups[0][1], now(), headers=not no_headers, **view.table_flags())
        text = writer.render(rows) if groups[0][1] else ""
    if text:
        click.echo(text)
    for error in errors:
        click.echo(error, err=True)
    if not any(objs for _, objs in groups) and not errors and output not in ("json", "yaml"):
        where = "" if view.all_namespaces else f" in {_ns(namespace)} namespace"
        click.echo(f"No resources found{where}.", err=True)
    if watch and not errors:
        kind, wanted = targets[0]
        _watch(agent, kind, ns, wanted, selector, view, writer, groups[0][1])
    if errors:
        sys.exit(1)


@dataclass(frozen=True)
class View:
    """How `get` prints objects: the -o format and the table's optional columns."""

    output: str | None
    all_namespaces: bool
    show_labels: bool

    def table_flags(self) -> dict[str, bool]:
        return {
            "wide": self.output == "wide",
            "all_namespaces": self.all_namespaces,
            "show_labels": self.show_labels,
        }


def _ns(value: str | None) -> str:
    return namespace_or_default(value)


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")


def _watch(
    agent: ApiClient,
    kind: Kind,
    ns: str | None,
    names: list[str],
    selector: str | None,
    view: View,
    writer: TableWriter,
    listed: list[Obj],
) -> None:
    """Follow the watch stream and print each change (a row, or the object with -o json|yaml|name).

    An event that would print what is already on screen (the stream's initial ADDED events, a change to a
    field no column shows) is skipped; a deletion is always printed, as kubectl does.
    """
    shown = {_key(obj): _identity(kind, obj, view) for obj in listed}
    if kind == ENDPOINTS and selector and not names:
        # the endpoint stream knows no labels: follow the Services the selector matched when listing
        names = [_key(obj)[1] for obj in listed]
        if not names:
            return
    events = (
        _endpoint_events(agent, ns, names, listed)
        if kind == ENDPOINTS
        else _object_events(agent, kind, ns, selector)
    )
    for event_type, obj in events:
        if names and _key(obj)[1] not in names:
            continue
        identity = _identity(kind, obj, view)
        if event_type != "DELETED" and shown.get(_key(obj)) == identity:
            continue
        shown[_key(obj)] = identity
        if event_type == "DELETED":
            shown.pop(_key(obj), None)
        click.echo(_format_one(kind, obj, view, writer))


_FIXED_TIME = datetime(2000, 1, 1, tzinfo=UTC)


def _identity(kind: Kind, obj: Obj, view: View) -> str:
    """What an event would print, with ages frozen (a row that differs only by AGE is no change)."""
    if view.output not in (None, "wide"):
        return json.dumps(obj, sort_keys=True)
    return "\t".join(table_row(kind, obj, _FIXED_TIME, **view.table_flags()))


def _format_one(kind: Kind, obj: Obj, view: View, writer: TableWriter) -> str:
    output = view.output
    if output == "json":
        return render_document(with_type(kind, obj), output)
    if output == "yaml":
        return "---\n" + render_document(with_type(kind, obj), output)
    if output == "name":
        return name_line(kind, obj)
    if output is not None and output.startswith("jsonpath="):
        from meshd.cli.jsonpath import render_template

        return render_template(output.partition("=")[2], with_type(kind, obj))
    if output is not None and output.startswith("custom-columns="):
        from meshd.cli.jsonpath import custom_column_rows

        return writer.render(custom_column_rows(output.partition("=")[2], [obj], headers=False))
    return writer.render([table_row(kind, obj, now(), **view.table_flags())])


def _object_events(
    agent: ApiClient, kind: Kind, ns: str | None, selector: str | None
) -> Iterator[tuple[str, Obj]]:
    for event in agent.stream_json_lines(kind.collection_path(ns), {"watch": 1, "labelSelector": selector}):
        if isinstance(event, dict) and isinstance(event.get("object"), dict):
            yield str(event.get("type", "")), event["object"]


def _endpoint_events(
    agent: ApiClient, ns: str | None, names: list[str], listed: list[Obj]
) -> Iterator[tuple[str, Obj]]:
    """v1 Endpoints built from the agent's endpoint watch (Reset/Add/Remove/DoesNotExist)."""
    from meshd.cli.endpoints_view import EndpointsView
    from meshd.model.endpoints import ServiceKey, update_from_json

    created = {_key(o): (o.get("metadata") or {}).get("creationTimestamp") for o in listed}
    if len(names) == 1 and ns is not None:
        stream = agent.stream_json_lines(
            f"/v1/namespaces/{quote(ns)}/endpoints/{quote(names[0])}", {"watch": 1}
        )
    else:
        stream = agent.stream_json_lines("/v1/watch/endpoints")
    view = EndpointsView()
    last: dict[ServiceKey, Obj] = {}
    for line in stream:
        if not isinstance(line, dict) or line.get("type") in ("Synced", "Heartbeat"):
            continue
        try:
            key = view.apply(update_from_json(line))
        except (KeyError, TypeError, ValueError):
            continue  # not an update this client understands (a newer agent's addition)
        if key is None or (ns is not None and key.namespace != ns):
            continue
        stamp = created.setdefault((key.namespace, key.name), now().strftime("%Y-%m-%dT%H:%M:%SZ"))
        obj = view.object(key, created=stamp)
        if obj is not None:
            last[key] = obj
            yield "MODIFIED", obj
        elif key in last:
            yield "DELETED", last.pop(key)


# --- describe ---------------------------------------------------------------------------------------------


@click.command()
@click.argument("resource")
@click.argument("names", nargs=-1)
@namespace_option
@click.option("-l", "--selector", default=None, help="Label selector.")
@api_option
def describe(
    resource: str, names: tuple[str, ...], namespace: str | None, selector: str | None, api: str | None
) -> None:
    """Show one object in detail (containers, state, probes, conditions, events): KIND NAME or KIND/NAME."""
    agent = client(api)
    ns = _ns(namespace)
    blocks = []
    for kind, wanted in parse_targets(resource, names):
        objs = (
            [get_object(agent, kind, ns, n) for n in wanted]
            if wanted
            else list_objects(agent, kind, ns, selector=selector)
        )
        if not objs and not wanted:
            click.echo(f"No resources found in {ns} namespace.", err=True)
        events = list_objects(agent, EVENT, ns, missing_ok=True) if objs else []
        for obj in objs:
            blocks.append(_describe_one(agent, kind, obj, events))
    if blocks:
        click.echo("\n\n\n".join(blocks))


def _describe_one(agent: ApiClient, kind: Kind, obj: Obj, events: list[Obj]) -> str:
    meta = obj.get("metadata") or {}
    ns, name = meta.get("namespace") or "default", meta.get("name", "")
    mine = describers.events_for(events, kind.kind, name)
    at = now()
    if kind == POD:
        return describers.describe_pod(obj, mine, at)
    if kind == DEPLOYMENT:
        selector = _match_labels(obj)
        rss = list_objects(agent, REPLICASET, ns, selector=selector)
        return describers.describe_deployment(obj, rss, mine, at)
    if kind == REPLICASET:
        pods = list_objects(agent, POD, ns, selector=_match_labels(obj))
        owned = [
            p
            for p in pods
            if any(r.get("name") == name for r in (p.get("metadata") or {}).get("ownerReferences") or [])
        ]
        return describers.describe_replicaset(obj, owned or pods, mine, at)
    if kind == SERVICE:
        try:
            endpoints = agent.get_json(ENDPOINTS.object_path(ns, name))
        except ApiError as exc:
            if exc.status != 404:
                raise
            endpoints = None
        return describers.describe_service(obj, endpoints, mine, at)
    if kind == ENDPOINTS:
        return describers.describe_endpoints(obj, mine, at)
    if kind.kind == "ConfigMap":
        return describers.describe_configmap(obj, mine, at)
    if kind.kind == "Secret":
        return describers.describe_secret(obj, mine, at)
    raise CliError(f"describe does not support {kind.plural}")


def _match_labels(obj: Obj) -> str | None:
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in labels.items()) or None

"""What every client command shares: the agent client, namespace options, errors, the clock."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from meshd.cli.client import ApiClient, ApiError, resolve_api_url
from meshd.cli.credentials import find_credentials
from meshd.cli.kinds import Kind

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_NAMESPACE = "default"


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def api_option(func: F) -> F:
    return click.option(
        "--api",
        "api",
        metavar="URL",
        default=None,
        help="The agent's API (http://HOST:PORT or HOST:PORT); default: $MESHD_API, else http://127.0.0.1:7700.",
    )(func)


def files_option(*, required: bool, help: str) -> Callable[[F], F]:
    """kubectl's `-f/--filename` (repeatable): files, directories or - for stdin."""
    return click.option("-f", "--filename", "files", multiple=True, required=required, help=help)


def namespace_option(func: F) -> F:
    return click.option("-n", "--namespace", default=None, help="The namespace (default: default).")(func)


def client(api: str | None) -> ApiClient:
    """The client for --api given on the command, else on `meshd` itself, else the environment."""
    ctx = click.get_current_context()
    root = ctx.find_root().params.get("api")
    try:
        base_url = resolve_api_url(api or root, os.environ)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    explicit = bool(api or root or os.environ.get("MESHD_API"))
    found = find_credentials(base_url, os.environ, explicit=explicit)
    return ApiClient(base_url, token=found.token, unix_socket=found.unix_socket)


def namespace_or_default(value: str | None) -> str:
    return value or DEFAULT_NAMESPACE


def now() -> datetime:
    return datetime.now(UTC)


def not_found(kind: Kind, name: str) -> str:
    """kubectl's message for a missing object."""
    return f'Error from server (NotFound): {kind.resource} "{name}" not found'


def get_object(api: ApiClient, kind: Kind, ns: str, name: str) -> dict[str, Any]:
    """One object; a missing one is a CliError with kubectl's NotFound message."""
    try:
        return api.get_json(kind.object_path(ns, name))
    except ApiError as exc:
        if exc.status == 404:
            raise CliError(not_found(kind, name)) from None
        raise


def list_objects(
    api: ApiClient, kind: Kind, ns: str | None, *, selector: str | None = None, missing_ok: bool = False
) -> list[dict[str, Any]]:
    """The items of a kind in a namespace (every namespace when ns is None)."""
    try:
        answer = api.get_json(kind.collection_path(ns), {"labelSelector": selector})
    except ApiError as exc:
        if missing_ok and exc.status == 404:
            return []
        raise
    if isinstance(answer, dict):
        return list(answer.get("items") or [])
    return list(answer or [])


def parse_duration(text: str) -> float:
    """A Go-style duration ("30s", "5m", "1h30m", "500ms") or plain seconds, as seconds."""
    import re

    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise click.BadParameter(f"invalid duration {text!r} (examples: 30s, 5m, 1h)")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * scale[u] for n, u in parts)

"""`meshd token create|list|delete`: bootstrap tokens for joining nodes (as `kubeadm token ...`), through the
agent's API (meshd.api.join)."""

from __future__ import annotations

from typing import Any

import click

from meshd.cli.common import CliError, api_option, client
from meshd.cli.tabwriter import tabwrite

TOKENS_PATH = "/meshd/v1/tokens"


@click.group()
def token() -> None:
    """Bootstrap tokens: a node joins the cluster with `meshd agent --join TOKEN`."""


@token.command("create")
@click.option("--ttl", default="24h", show_default=True,
              help="How long the token admits nodes (e.g. 1h, 30m, 90s; 0: never expires).")
@click.option("--description", default=None, help="What the token is for (shown by `meshd token list`).")
@click.option("--print-join-command", is_flag=True, help="Print the whole `meshd agent --join ...` command.")
@api_option
def create(ttl: str, description: str | None, print_join_command: bool, api: str | None) -> None:
    """Make a token; prints it (the secret is shown only now)."""
    from meshd.cluster.tokens import parse_ttl

    try:
        seconds = parse_ttl(ttl)
    except ValueError as exc:
        raise CliError(f"--ttl: {exc}") from None  # the agent refuses one out of range
    payload: dict[str, Any] = {"ttl": seconds}
    if description:
        payload["description"] = description
    answer = client(api).send_json("POST", TOKENS_PATH, payload)
    click.echo(answer["join"] if print_join_command else answer["token"])


@token.command("list")
@api_option
def list_tokens(api: str | None) -> None:
    """The cluster's tokens (ids, expiry; never their secrets)."""
    items = (client(api).get_json(TOKENS_PATH) or {}).get("items") or []
    rows = [["ID", "EXPIRES", "USAGES", "DESCRIPTION"]]
    for item in items:
        expires = item.get("expires") or "<never>"
        if item.get("expired"):
            expires += " (expired)"
        rows.append([item["id"], expires, ",".join(item.get("usages") or []) or "<none>",
                     item.get("description") or ""])
    if len(rows) == 1:
        click.echo("No bootstrap tokens.", err=True)
        return
    click.echo(tabwrite("\n".join("\t".join(row) + "\t" for row in rows), minwidth=10, padding=3).rstrip())


@token.command("delete")
@click.argument("ids", nargs=-1, required=True)
@api_option
def delete(ids: tuple[str, ...], api: str | None) -> None:
    """Delete tokens by id (the part before the dot); a deleted token admits no node."""
    api_client = client(api)
    for token_id in ids:
        api_client.request("DELETE", f"{TOKENS_PATH}/{token_id.partition('.')[0]}")
        click.echo(f"bootstrap token \"{token_id.partition('.')[0]}\" deleted")


__all__ = ["token"]

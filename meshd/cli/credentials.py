"""Where the CLI finds its credentials for the agent, in kubectl's spirit: `MESHD_TOKEN`, else the kubeconfig
(`KUBECONFIG` or ~/.kube/config, its current context, if that context's server is this agent), else the
default state dir's token. Without an explicit address the default agent's Unix socket is used when this
user may open it (its permissions are the credential, as Docker's socket's are)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshd.state import SOCKET_FILE, TOKEN_FILE, default_state_dir


@dataclass(frozen=True)
class Credentials:
    token: str | None = None
    unix_socket: str | None = None


def find_credentials(base_url: str, env: Mapping[str, str], *, explicit: bool,
                     state_dir: Path | None = None) -> Credentials:
    """The token (and socket) for the agent at `base_url`; `explicit`: the user named the address."""
    state = state_dir or default_state_dir()
    sock = state / SOCKET_FILE
    unix = str(sock) if not explicit and sock.is_socket() and os.access(sock, os.R_OK | os.W_OK) else None
    token = (env.get("MESHD_TOKEN") or "").strip() or kubeconfig_token(base_url, env) or read_token(state)
    return Credentials(token=token or None, unix_socket=unix)


def read_token(state_dir: Path) -> str | None:
    try:
        return (state_dir / TOKEN_FILE).read_text().strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def kubeconfig_paths(env: Mapping[str, str]) -> list[Path]:
    value = env.get("KUBECONFIG")
    if value:
        return [Path(p).expanduser() for p in value.split(os.pathsep) if p]
    return [Path("~/.kube/config").expanduser()]


def kubeconfig_token(base_url: str, env: Mapping[str, str]) -> str | None:
    """The current context's token, if its cluster's server is `base_url` (first file with a context wins)."""
    import yaml

    for path in kubeconfig_paths(env):
        try:
            config = yaml.safe_load(path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(config, dict) and config.get("current-context"):
            return token_from_config(config, base_url)
    return None


def token_from_config(config: Mapping[str, Any], base_url: str) -> str | None:
    from meshd.cli.client import resolve_api_url

    def named(section: str, name: Any) -> Mapping[str, Any]:
        for entry in config.get(section) or []:
            if isinstance(entry, dict) and entry.get("name") == name:
                return entry.get(section[:-1]) or {}
        return {}

    context = named("contexts", config.get("current-context"))
    server = named("clusters", context.get("cluster")).get("server")
    try:
        if not isinstance(server, str) or resolve_api_url(server, {}) != base_url:
            return None
    except ValueError:
        return None
    user = named("users", context.get("user"))
    if isinstance(user.get("token"), str):
        return user["token"].strip() or None
    if isinstance(user.get("tokenFile"), str):
        try:
            return Path(user["tokenFile"]).expanduser().read_text().strip() or None
        except OSError:
            return None
    return None


def kubeconfig(*, server: str, token: str, name: str = "meshd") -> dict[str, Any]:
    """A kubeconfig for the agent (as k3s and kind print theirs)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": server}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": "default"}}],
        "current-context": name,
    }

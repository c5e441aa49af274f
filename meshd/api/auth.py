"""Who may use the agent's API: a bearer token on TCP (as the Kubernetes API server takes one), the Unix
socket's file permissions for its owner (as Docker's socket), and no browser page, ever.

`decide` is the whole policy as a pure function; `auth_middleware` is the thin aiohttp wrapper around it.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import socket
import stat
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from meshd.api import protobuf
from meshd.api.status import status
from meshd.state import TOKEN_FILE

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/metrics", "/healthz", "/v1/prometheus/targets",  # readable without a token
                        "/meshd/v1/join/proof"})  # an agent's proof that it knows a bootstrap token's secret
OPEN_POSTS = frozenset({"/meshd/v1/join"})  # admitted by the bootstrap token in the body (meshd.api.join)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_JSON_OR_YAML = frozenset({"application/json", "application/yaml", "application/x-yaml", "text/yaml",
                           "application/merge-patch+json", "application/strategic-merge-patch+json",
                           "application/json-patch+json", "application/apply-patch+yaml"})


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: the HTTP status, the Kubernetes `reason` and a message for the user."""

    code: int
    reason: str
    message: str


def writable_content_type(content_type: str) -> bool:
    """JSON or YAML, in any of the forms Kubernetes clients send (`application/*+json`, `+yaml`)."""
    media = content_type.partition(";")[0].strip().lower()
    if media == protobuf.CONTENT_TYPE:  # kubectl's typed clients: meshd.api.protobuf decodes the kinds it can
        return True  # (ConfigMap, Secret, Namespace, a Job from a CronJob) and the API refuses the rest with 415
    return media in _JSON_OR_YAML or (media.startswith("application/") and media.endswith(("+json", "+yaml")))


def cross_site(headers: Mapping[str, str], *, host: str) -> bool:
    """A request a browser sent for another origin's page: an Origin that is not this server's own, or the
    browser saying so (`Sec-Fetch-Site: cross-site` or `same-site`, a page on another port of this host).
    Clients that are not browsers send neither."""
    if headers.get("Sec-Fetch-Site", "").strip().lower() in ("cross-site", "same-site"):
        return True
    origin = headers.get("Origin")
    if origin is None:
        return False
    return origin.strip().lower().rstrip("/") not in (f"http://{host}".lower(), f"https://{host}".lower())


def bearer_token(headers: Mapping[str, str]) -> str | None:
    scheme, _, value = headers.get("Authorization", "").strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def token_matches(given: str | None, token: str) -> bool:
    """Constant-time: how long the comparison takes says nothing about the token."""
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def decide(*, method: str, path: str, headers: Mapping[str, str], host: str, token: str, local_owner: bool,
           has_body: bool) -> Refusal | None:
    """None if the request may go on, else why not. `local_owner`: it came over the Unix socket from its owner.

    Order: a browser is refused first (whatever it carries), then the credentials, then the body's type."""
    if cross_site(headers, host=host):
        return Refusal(403, "Forbidden", "cross-site requests are refused: a web page may not use the meshd API")
    open_read = method in ("GET", "HEAD") and path in OPEN_PATHS or method == "POST" and path in OPEN_POSTS
    if not (local_owner or open_read or token_matches(bearer_token(headers), token)):
        return Refusal(401, "Unauthorized", "Unauthorized: a bearer token is required (the agent's STATE/token; "
                       "`meshd kubeconfig` prints a kubeconfig with it)")
    content_type = headers.get("Content-Type")
    # no Content-Type is read as JSON, as the API server does (the Python client v37 sends none on create and
    # replace); this is past the cross-site and credential checks, so no browser form gets here
    if method in WRITE_METHODS and content_type is not None and not writable_content_type(content_type):
        return Refusal(415, "UnsupportedMediaType",
                       f"unsupported media type {content_type or '(none)'!r}: send application/json or "
                       "application/yaml")
    return None


def from_owner(request: web.BaseRequest) -> bool:
    """The request came over the Unix socket from a process of the agent's own user (or root)."""
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is None or sock.family != socket.AF_UNIX:
        return False
    try:
        _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                               struct.calcsize("3i")))
    except OSError:
        return False
    return uid in (0, os.geteuid())


def auth_middleware(token: Callable[[], str]) -> Callable[..., Any]:
    @web.middleware
    async def authenticate(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        refusal = decide(method=request.method, path=request.path, headers=request.headers, host=request.host,
                         token=token(), local_owner=from_owner(request), has_body=request.body_exists)
        if refusal is not None:
            headers = {"WWW-Authenticate": 'Bearer realm="meshd"'} if refusal.code == 401 else None
            return web.json_response(status(refusal.code, refusal.message, reason=refusal.reason),
                                     status=refusal.code, headers=headers)
        return await handler(request)

    return authenticate


def load_or_create_token(state_dir: Path) -> str:
    """The agent's token: read from STATE/token, else made (random, 256 bits) and written with mode 0600.
    A token file that others can read is tightened to 0600 (with a warning): the token stays the same."""
    path = state_dir / TOKEN_FILE
    try:
        info = path.stat()
    except FileNotFoundError:
        info = None
    if info is not None:
        if stat.S_IMODE(info.st_mode) & 0o077:
            log.warning("%s was readable by others; setting its mode to 0600", path)
            path.chmod(0o600)
        token = path.read_text().strip()
        if token and token.isascii() and token.isprintable() and " " not in token:
            return token
        log.warning("%s holds no usable token; writing a new one", path)
        path.unlink()
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return token


def owner_only_socket(path: Path) -> socket.socket:
    """A listening-ready Unix socket at `path`, mode 0600 before anyone can connect (connect needs listen())."""
    if path.is_socket():
        path.unlink()  # a previous agent's; the caller holds the state dir
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        path.chmod(0o600)
    except OSError:
        sock.close()
        raise
    return sock

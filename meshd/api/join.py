"""Joining a cluster with a bootstrap token, on the agent's API.

`GET /meshd/v1/join/proof?id=ID&nonce=N` (open) answers `{"certificateSHA256", "proof"}`: the SHA-256 of this
API's TLS certificate and an HMAC of the nonce and it, keyed with the token's secret
(meshd.cluster.tokens.server_proof). A joining node checks it before it sends its token, then pins that
certificate: an impostor on the LAN cannot make the proof, a relay cannot present the certificate.

`POST /meshd/v1/join` `{"token", "node", "csr"}` needs no bearer token, only the bootstrap token it carries
(rate-limited per client address, body at most 64 KiB): a valid, unexpired token answers
`{"store", "ca", "certificate"}` (the node certificate signed from the CSR), and `"storeTLS": {"ca",
"certificate", "key"}` when the cluster's etcd speaks TLS (meshd.cluster.storecreds); anything else a v1 Status
saying why (malformed, unknown token, wrong secret, expired at T, node name taken by a Ready node).

`GET|POST /meshd/v1/tokens`, `DELETE /meshd/v1/tokens/{id}` list, make and delete tokens (with the API's
bearer token, as every other route): what `meshd token ...` calls."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import Counter

from meshd.api import status as api_status
from meshd.cluster import bootstrap, tokens
from meshd.cluster.joinca import CsrError
from meshd.cluster.joining import JOIN_PATH, PROOF_PATH
from meshd.cluster.nodes import nodes_with_readiness
from meshd.cluster.storecreds import StoreCredentials
from meshd.metrics import REGISTRY
from meshd.store import ObjectStore, StoreError

log = logging.getLogger(__name__)

TOKENS_PATH = "/meshd/v1/tokens"
MAX_JOIN_BODY = 64 * 1024
_NONCE = re.compile(r"^[0-9a-f]{32,128}$")
_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

Issuer = Callable[[str, bytes], tuple[bytes, bytes]]  # (node name, CSR PEM) -> (CA PEM, certificate PEM)
JOINS = Counter("meshd_join_requests", "Join requests (the proof asked and the join) by outcome: Admitted, or why "
                "refused (UnknownToken, WrongSecret, Expired, Malformed, NameTaken, TooMany, BadRequest).", ["outcome"],
                registry=REGISTRY)
for _outcome in ("Admitted", "UnknownToken", "WrongSecret", "Expired"):
    JOINS.labels(_outcome)


class RateLimiter:
    """A token bucket per client address: `burst` requests at once, then `rate` a second (the least recently
    seen addresses are forgotten beyond `max_clients`)."""

    def __init__(self, *, rate: float = 1.0, burst: int = 10, max_clients: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.max_clients, self._clock = rate, burst, max_clients, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # address -> (tokens, when)

    def wait(self, address: str) -> float:
        """0 if a request from `address` may go on now (and counts it), else the seconds until one may."""
        now = self._clock()
        level, then = self._buckets.pop(address, (float(self.burst), now))
        level = min(float(self.burst), level + (now - then) * self.rate)
        if level >= 1:
            self._buckets[address] = (level - 1, now)
            wait = 0.0
        else:
            self._buckets[address] = (level, now)
            wait = (1 - level) / self.rate
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


def validate_request(body: Any) -> tuple[str, str, bytes]:
    """(token, node, csr) from a join request body; ValueError saying what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("a join request is a JSON object {\"token\", \"node\", \"csr\"}")
    token, node, csr = body.get("token"), body.get("node"), body.get("csr")
    for field, value in (("token", token), ("node", node), ("csr", csr)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"a join request needs {field!r} (a non-empty string)")
    assert isinstance(token, str) and isinstance(node, str) and isinstance(csr, str)
    if len(node) > 253 or not _NODE_NAME.match(node):
        raise ValueError(f"node name {node[:80]!r} is not a DNS subdomain (lowercase letters, digits, '-' and '.')")
    return token, node, csr.encode()


def _refused(refusal: tokens.Refusal, token_id: str = "") -> web.Response:
    details = {"kind": "bootstrap-token", "name": token_id,
               "causes": [{"reason": refusal.cause, "message": refusal.message}]}
    return api_status.response(refusal.code, refusal.message, reason=refusal.reason, details=details)


class JoinApi:
    """The routes above; the agent sets `store_url`, `issue` and `server` once it knows them."""

    def __init__(self, *, store: Callable[[], ObjectStore], grace: Callable[[], float],
                 clock: Callable[[], float] = time.time, limiter: RateLimiter | None = None) -> None:
        self._store, self._grace, self._clock = store, grace, clock
        self.limiter = limiter or RateLimiter()
        self.store_url: str | None = None  # None: not in a cluster (a single node on SQLite)
        self.issue: Issuer | None = None
        self.server: str | None = None  # this agent's API as a joining node reaches it (for the join command)
        self.certificate_sha256: str | None = None  # of the API's TLS serving certificate (hex)
        self.store_credentials: StoreCredentials | None = None  # etcd's CA and client certificate, for joiners

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(JOIN_PATH, self.join)
        router.add_get(PROOF_PATH, self.proof)
        router.add_get(TOKENS_PATH, self.list_tokens)
        router.add_post(TOKENS_PATH, self.create_token)
        router.add_delete(TOKENS_PATH + "/{id}", self.delete_token)

    def _cluster_store(self) -> ObjectStore:
        if self.store_url is None:
            raise ValueError("this agent is not in a cluster: bootstrap tokens need a shared store "
                             "(start the agent with --store etcd://HOST:PORT)")
        return self._store()

    def _limited(self, request: web.Request) -> web.Response | None:
        wait = self.limiter.wait(request.remote or "")
        if wait <= 0:
            return None
        retry = max(int(wait + 0.999), 1)
        return web.json_response(api_status.status(429, f"too many join requests from {request.remote}: try "
                                                        f"again in {retry}s"),
                                 status=429, headers={"Retry-After": str(retry)})

    async def proof(self, request: web.Request) -> web.Response:
        limited = self._limited(request)
        if limited is not None:
            JOINS.labels("TooMany").inc()
            return limited
        token_id, nonce = request.query.get("id", ""), request.query.get("nonce", "")
        if not _NONCE.match(nonce):
            return api_status.response(400, "bad join proof request: nonce must be 32 to 128 hex digits")
        if self.store_url is None or self.certificate_sha256 is None:
            return api_status.response(503, "this agent is not in a cluster (no --store): nothing to join")
        known = tokens.check_id(token_id, bootstrap.tokens_by_id(self._store()), now=self._clock())
        if isinstance(known, tokens.Refusal):
            log.warning("join proof refused (from %s): %s", request.remote, known.message)
            JOINS.labels(known.cause).inc()
            return _refused(known, token_id if tokens.valid_id(token_id) else "")
        return web.json_response({"certificateSHA256": self.certificate_sha256,
                                  "proof": tokens.server_proof(known.secret, nonce, self.certificate_sha256)})

    async def join(self, request: web.Request) -> web.Response:
        limited = self._limited(request)
        if limited is not None:
            JOINS.labels("TooMany").inc()
            return limited
        if request.content_length is not None and request.content_length > MAX_JOIN_BODY:
            return api_status.response(413, f"a join request is at most {MAX_JOIN_BODY} bytes")
        raw = b""
        while len(raw) <= MAX_JOIN_BODY:
            part = await request.content.read(MAX_JOIN_BODY + 1 - len(raw))
            if not part:
                break
            raw += part
        if len(raw) > MAX_JOIN_BODY:
            return api_status.response(413, f"a join request is at most {MAX_JOIN_BODY} bytes")
        try:
            token_text, node, csr = validate_request(json.loads(raw))
        except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
            JOINS.labels("BadRequest").inc()
            return api_status.response(400, f"bad join request: {error}")
        if self.store_url is None:
            return api_status.response(503, "this agent is not in a cluster (no --store): nothing to join")
        store = self._store()
        verdict = tokens.check(token_text, bootstrap.tokens_by_id(store), now=self._clock())
        if isinstance(verdict, tokens.Refusal):
            token_id = token_text.partition(".")[0] if verdict.cause != "Malformed" else ""
            log.warning("join refused (node %r from %s): %s", node, request.remote, verdict.message)
            JOINS.labels(verdict.cause).inc()
            return _refused(verdict, token_id if tokens.valid_id(token_id) else "")
        taken = self._ready_node(store, node)
        if taken:
            message = (f'node name "{node}" is taken by a Ready node (its agent renews its lease): choose another '
                       "--node-name, or stop that agent first")
            log.warning("join refused (node %r from %s): %s", node, request.remote, message)
            JOINS.labels("NameTaken").inc()
            return api_status.response(409, message, reason="AlreadyExists",
                                       details={"kind": "nodes", "name": node})
        if self.issue is None:
            return api_status.response(503, "this agent cannot issue node certificates")
        try:
            ca_pem, cert_pem = await asyncio.to_thread(self.issue, node, csr)
        except CsrError as error:
            return api_status.response(400, f"bad join request: {error}")
        except StoreError as error:  # the cluster CA not readable yet
            return api_status.response(503, f"cannot issue a node certificate: {error}")
        log.info("node %s joins the cluster (bootstrap token %s, from %s)", node, verdict.id, request.remote)
        JOINS.labels("Admitted").inc()
        answer: dict[str, Any] = {"store": self.store_url, "ca": ca_pem.decode(), "certificate": cert_pem.decode()}
        if self.store_credentials is not None:
            answer["storeTLS"] = self.store_credentials.to_json()
        return web.json_response(answer)

    def _ready_node(self, store: ObjectStore, name: str) -> bool:
        for node in nodes_with_readiness(store, grace=self._grace(), now=self._clock()):
            if node["metadata"]["name"] == name:
                return any(c.get("type") == "Ready" and c.get("status") == "True"
                           for c in (node.get("status") or {}).get("conditions") or [])
        return False

    async def list_tokens(self, request: web.Request) -> web.Response:
        now = self._clock()
        return web.json_response({"items": [token_json(t, now) for t in
                                             bootstrap.list_tokens(self._cluster_store())]})

    async def create_token(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        if not isinstance(body, dict):
            raise ValueError("a token request is a JSON object {\"ttl\", \"description\"}")
        ttl = body.get("ttl", tokens.DEFAULT_TTL)
        if isinstance(ttl, str):
            ttl = tokens.parse_ttl(ttl)
        elif isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
            raise ValueError(f"ttl must be seconds or a duration such as 1h (got {ttl!r})")
        description = str(body.get("description") or "made by `meshd token create`")
        token, expires = await bootstrap.create_token(self._cluster_store(), ttl=ttl, description=description,
                                                      clock=self._clock)
        return web.json_response({"token": str(token), "id": token.id,
                                  "expires": tokens.rfc3339(expires) if expires is not None else None,
                                  "join": tokens.join_command(token)}, status=201)

    async def delete_token(self, request: web.Request) -> web.Response:
        token_id = request.match_info["id"]
        await bootstrap.delete_token(self._cluster_store(), token_id)
        return web.json_response(api_status.success(name=token_id, kind="bootstrap-token"))


def token_json(token: tokens.StoredToken, now: float) -> dict[str, Any]:
    """A token as `meshd token list` shows it: never its secret."""
    return {"id": token.id, "expires": tokens.rfc3339(token.expires) if token.expires is not None else None,
            "expired": token.expires is not None and now >= token.expires,
            "usages": ["authentication"] if token.authentication else [], "description": token.description}


__all__ = ["JOIN_PATH", "PROOF_PATH", "MAX_JOIN_BODY", "TOKENS_PATH", "JoinApi", "RateLimiter", "token_json", "validate_request"]

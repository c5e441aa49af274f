"""Bootstrap tokens as kubeadm makes them: `[a-z0-9]{6}.[a-z0-9]{16}` (an id anyone may see, a secret only a
token holder knows), kept as a Secret `kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token`
with `token-id`, `token-secret`, `expiration` (RFC 3339), `usage-bootstrap-authentication` and `description`.

Pure: `generate`, `parse`, `secret_object`, `stored_token` and `check` (the whole admission decision: malformed,
unknown, wrong secret, expired, not for authentication; the secret compared in constant time), and `expired`
(which token Secrets Kubernetes' tokencleaner deletes); `clean_expired_tokens` is the leader's thin loop."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

TOKEN_TYPE = "bootstrap.kubernetes.io/token"
NAMESPACE = "kube-system"
NAME_PREFIX = "bootstrap-token-"
DEFAULT_TTL = 24 * 3600.0  # kubeadm's default
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_TOKEN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
_ID = re.compile(r"^[a-z0-9]{6}$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


@dataclass(frozen=True)
class BootstrapToken:
    id: str
    secret: str = ""

    def __str__(self) -> str:
        return f"{self.id}.{self.secret}"

    def __repr__(self) -> str:  # never the secret, in a log line or a traceback
        return f"BootstrapToken(id={self.id!r})"


@dataclass(frozen=True)
class StoredToken:
    """A token as its Secret holds it (expires: seconds since the epoch, None: never)."""

    id: str
    secret: str = ""
    expires: float | None = None
    authentication: bool = True
    description: str = ""

    def __repr__(self) -> str:
        return f"StoredToken(id={self.id!r}, expires={self.expires!r})"


@dataclass(frozen=True)
class Refusal:
    """Why a token is refused: the HTTP status, a Kubernetes-style reason, a cause and a message for the user."""

    code: int
    reason: str
    cause: str  # Malformed, UnknownToken, WrongSecret, Expired, NotForAuthentication
    message: str


def generate(choice: Callable[[str], str] = secrets.choice) -> BootstrapToken:
    """A new random token (16 secret characters of 36: 82 bits)."""
    return BootstrapToken("".join(choice(ALPHABET) for _ in range(6)), "".join(choice(ALPHABET) for _ in range(16)))


def parse(text: str) -> BootstrapToken:
    """`abcdef.0123456789abcdef` -> BootstrapToken; ValueError naming the expected form (never echoing a secret)."""
    found = _TOKEN.match(text.strip()) if isinstance(text, str) else None
    if found is None:
        raise ValueError("malformed bootstrap token: expected [a-z0-9]{6}.[a-z0-9]{16} "
                         "(as `meshd token create` prints it)")
    return BootstrapToken(found.group(1), found.group(2))


def valid_id(text: str) -> bool:
    return bool(_ID.match(text))


def secret_name(token_id: str) -> str:
    return NAME_PREFIX + token_id


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    """An RFC 3339 time (Z or an offset, fractions allowed) as seconds since the epoch; ValueError else."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment.timestamp()


def parse_ttl(text: str) -> float:
    """A Go-style duration (`24h`, `1h30m`, `90s`, `1d`; a bare number is seconds) as seconds; `0` never
    expires (as kubeadm's --ttl 0). ValueError for anything else or a negative value."""
    value = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    if not value or _DURATION.sub("", value):
        raise ValueError(f"invalid duration {text!r}: expected e.g. 24h, 1h30m, 90s or 0 (never expires)")
    factors = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(number) * factors[unit] for number, unit in _DURATION.findall(value))


def secret_object(token: BootstrapToken, *, expires: float | None, description: str) -> dict[str, Any]:
    """The Secret kubeadm writes for a token (data base64, as the API server stores it)."""
    data = {"token-id": token.id, "token-secret": token.secret, "usage-bootstrap-authentication": "true",
            "description": description}
    if expires is not None:
        data["expiration"] = rfc3339(expires)
    return {"apiVersion": "v1", "kind": "Secret", "type": TOKEN_TYPE,
            "metadata": {"name": secret_name(token.id), "namespace": NAMESPACE},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def stored_token(secret: Mapping[str, Any]) -> StoredToken | None:
    """The token a Secret holds; None when it is not a well-formed bootstrap token Secret."""
    if secret.get("type") != TOKEN_TYPE:
        return None
    raw = secret.get("data") or {}
    fields: dict[str, str] = {}
    try:
        for key, value in raw.items():
            fields[key] = base64.b64decode(str(value), validate=True).decode()
        for key, value in (secret.get("stringData") or {}).items():
            fields[key] = str(value)
        expires = parse_rfc3339(fields["expiration"]) if fields.get("expiration") else None
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None
    token_id = fields.get("token-id", "")
    name = str((secret.get("metadata") or {}).get("name", ""))
    if not valid_id(token_id) or name != secret_name(token_id):
        return None
    return StoredToken(token_id, fields.get("token-secret", ""), expires,
                       fields.get("usage-bootstrap-authentication") == "true", fields.get("description", ""))


def tokens_in(secrets_: Iterable[Mapping[str, Any]]) -> dict[str, StoredToken]:
    """Every well-formed bootstrap token among `secrets_`, by id."""
    return {t.id: t for t in (stored_token(s) for s in secrets_) if t is not None}


def server_proof(secret: str, nonce: str, certificate_sha256: str) -> str:
    """What an agent answers a joining node before the node sends its token: an HMAC, keyed with the token's
    secret, of the node's nonce and the agent's TLS certificate (its SHA-256). Only a holder of the secret can
    make it, and it binds the certificate the node then pins (as kubeadm's signed cluster-info binds the CA)."""
    message = f"meshd-join|{nonce}|{certificate_sha256.lower()}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def proof_matches(token: BootstrapToken, nonce: str, certificate_sha256: str, proof: str) -> bool:
    return hmac.compare_digest(server_proof(token.secret, nonce, certificate_sha256).encode(), proof.encode())


def check_id(token_id: str, stored: Mapping[str, StoredToken], *, now: float) -> Refusal | StoredToken:
    """The token an id names, if it may admit a node now (the secret is checked later, or by the node)."""
    if not valid_id(token_id):
        return Refusal(400, "BadRequest", "Malformed", "malformed bootstrap token id: expected [a-z0-9]{6}")
    known = _known(token_id, stored)
    return known if isinstance(known, Refusal) else _usable(known, now) or known


def _known(token_id: str, stored: Mapping[str, StoredToken]) -> Refusal | StoredToken:
    known = stored.get(token_id)
    if known is None:
        return Refusal(401, "Unauthorized", "UnknownToken",
                       f'bootstrap token "{token_id}" is unknown to this cluster (deleted, or for another cluster); '
                       "`meshd token list` on a node of the cluster shows its tokens")
    return known


def _usable(known: StoredToken, now: float) -> Refusal | None:
    if known.expires is not None and now >= known.expires:
        return Refusal(401, "Unauthorized", "Expired",
                       f'bootstrap token "{known.id}" expired at {rfc3339(known.expires)}; '
                       "make a new one with `meshd token create`")
    if not known.authentication:
        return Refusal(403, "Forbidden", "NotForAuthentication",
                       f'bootstrap token "{known.id}" is not for authentication '
                       "(usage-bootstrap-authentication is not \"true\")")
    return None


def check(given: str, stored: Mapping[str, StoredToken], *, now: float) -> Refusal | BootstrapToken:
    """Admits `given` (the token it is) or says why not. The secret is compared in constant time; an expired
    token is refused even with the right secret, and says when it expired."""
    try:
        token = parse(given)
    except ValueError as error:
        return Refusal(400, "BadRequest", "Malformed", str(error))
    known = _known(token.id, stored)  # the secret before the expiry: nothing more told to a guesser
    if isinstance(known, Refusal):
        return known
    if not hmac.compare_digest(token.secret.encode(), known.secret.encode()):
        return Refusal(401, "Unauthorized", "WrongSecret",
                       f'bootstrap token "{token.id}": wrong secret (check the token as `meshd token create` printed it)')
    return _usable(known, now) or token


def expiry_of(secret: Mapping[str, Any]) -> float | None:
    """When a bootstrap token Secret expires (seconds since the epoch); None when it never does, is not a token
    Secret, or its expiration does not parse (kept then, as the tokencleaner keeps it)."""
    if secret.get("type") != TOKEN_TYPE:
        return None
    raw = (secret.get("stringData") or {}).get("expiration") or (secret.get("data") or {}).get("expiration")
    if not raw:
        return None
    try:
        text = str(raw) if "expiration" in (secret.get("stringData") or {}) else \
            base64.b64decode(str(raw), validate=True).decode()
        return parse_rfc3339(text)
    except (ValueError, UnicodeDecodeError):
        return None


def expired(secrets_: Iterable[Mapping[str, Any]], *, now: float, keep: float = 0.0) -> list[tuple[str, str]]:
    """The bootstrap token Secrets of kube-system expired `keep` seconds ago or longer, as (name,
    resourceVersion): what Kubernetes' tokencleaner deletes (at once: keep 0; meshd keeps them an hour by
    default, so a node trying one is told it expired, not that it is unknown). Other Secrets, tokens that never
    expire and unparsable expirations stay."""
    out = []
    for secret in secrets_:
        meta = secret.get("metadata") or {}
        expires = expiry_of(secret)
        if meta.get("namespace", NAMESPACE) == NAMESPACE and expires is not None and now >= expires + keep:
            out.append((str(meta.get("name", "")), str(meta.get("resourceVersion") or "")))
    return sorted(out)


def next_expiry(secrets_: Iterable[Mapping[str, Any]], *, now: float, keep: float = 0.0) -> float | None:
    """When the next token Secret is due for deletion (its expiration plus `keep`; the cleaner wakes then);
    None: none is."""
    ours = (s for s in secrets_ if (s.get("metadata") or {}).get("namespace", NAMESPACE) == NAMESPACE)
    coming = [e + keep for e in (expiry_of(s) for s in ours) if e is not None and e + keep > now]
    return min(coming) if coming else None


async def clean_expired_tokens(store: Any, *, leading: Callable[[], bool], clock: Callable[[], float],
                               keep: float = 0.0, longest: float = 5.0,
                               sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """The leader's tokencleaner: deletes every bootstrap token Secret expired `keep` seconds ago (guarded by the resourceVersion
    it read: a token renewed meanwhile stays), then sleeps until the next expiry (at most `longest` seconds,
    so tokens made meanwhile are seen). A failed delete is tried again at the next pass."""
    from meshd.store import Delete, StoreError

    while True:
        now = clock()
        listed = store.list("Secret", NAMESPACE) if leading() else []
        for name, version in expired(listed, now=now, keep=keep):
            try:
                await store.transaction([Delete("Secret", NAMESPACE, name, version or None)])
                log.info("bootstrap token %s expired: deleted its Secret %s/%s", name.removeprefix(NAME_PREFIX),
                         NAMESPACE, name)
            except StoreError as error:
                log.warning("cannot delete the expired bootstrap token Secret %s/%s: %s", NAMESPACE, name, error)
        coming = next_expiry(listed, now=now, keep=keep)
        await sleep(min(longest, max(coming - now, 0.0) + 0.5) if coming is not None else longest)


def join_command(token: BootstrapToken, server: str | None = None) -> str:
    """What to run on another machine to join (with `server`, no discovery: as k3s' --server)."""
    return f"meshd agent --join {token}" + (f" --server {server}" if server else "")


__all__ = ["DEFAULT_TTL", "BootstrapToken", "Refusal", "StoredToken", "check", "clean_expired_tokens", "expired",
           "expiry_of", "generate", "join_command", "next_expiry", "parse", "parse_ttl", "secret_object",
           "stored_token", "tokens_in"]

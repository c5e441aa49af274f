"""The cluster's identity and its bootstrap tokens in the shared store: the first agent on an empty store
claims the cluster (a ConfigMap kube-system/meshd-cluster with a new cluster id; of two agents racing, the
store's create-if-absent lets one win) and makes the first join token; `meshd token ...` make, list and delete
more. Thin I/O around meshd.cluster.tokens."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from meshd.cluster import tokens
from meshd.store import AlreadyExists, NotFound, ObjectStore

log = logging.getLogger(__name__)

CLUSTER_CONFIGMAP = "meshd-cluster"
MAX_TTL = 10 * 365 * 86400.0


@dataclass(frozen=True)
class Claim:
    cluster_id: str
    first: bool  # this agent made the cluster (so it makes the first token)


async def claim_cluster(store: ObjectStore, node: str) -> Claim:
    """The cluster id from the store, made by this agent if there is none yet."""
    current = store.get("ConfigMap", tokens.NAMESPACE, CLUSTER_CONFIGMAP)
    if current is None:
        cluster_id = uuid.uuid4().hex[:16]
        try:
            await store.create({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": CLUSTER_CONFIGMAP, "namespace": tokens.NAMESPACE},
                                "data": {"cluster-id": cluster_id, "created-by": node}})
            return Claim(cluster_id, True)
        except AlreadyExists:  # another agent claimed it first
            current = store.get("ConfigMap", tokens.NAMESPACE, CLUSTER_CONFIGMAP)
    return Claim(str(((current or {}).get("data") or {}).get("cluster-id") or "unknown"), False)


async def create_token(store: ObjectStore, *, ttl: float, description: str,
                       clock: Callable[[], float] = time.time) -> tuple[tokens.BootstrapToken, float | None]:
    """A new token in the store (ttl 0: it never expires); the token and when it expires."""
    if not 0 <= ttl <= MAX_TTL:  # NaN too
        raise ValueError(f"a token's ttl is 0 (never expires) to {MAX_TTL / 86400 / 365:g} years (got {ttl:g}s)")
    expires = clock() + ttl if ttl > 0 else None
    for _ in range(5):  # a random id already taken: try another
        token = tokens.generate()
        try:
            await store.create(tokens.secret_object(token, expires=expires, description=description))
            return token, expires
        except AlreadyExists:
            continue
    raise RuntimeError("could not find a free bootstrap token id")


def tokens_by_id(store: ObjectStore) -> dict[str, tokens.StoredToken]:
    return tokens.tokens_in(store.list("Secret", tokens.NAMESPACE))


def list_tokens(store: ObjectStore) -> list[tokens.StoredToken]:
    found = tokens_by_id(store)
    return [found[k] for k in sorted(found)]


async def delete_token(store: ObjectStore, token_id: str) -> None:
    """KeyError (a 404) when there is no such token; ValueError when the id is not one."""
    if not tokens.valid_id(token_id):
        raise ValueError(f"{token_id!r} is not a bootstrap token id (6 of [a-z0-9]; the part before the dot)")
    try:
        await store.delete("Secret", tokens.NAMESPACE, tokens.secret_name(token_id))
    except NotFound:
        raise KeyError(f'bootstrap token "{token_id}" not found') from None


__all__ = ["CLUSTER_CONFIGMAP", "Claim", "claim_cluster", "create_token", "delete_token", "list_tokens", "tokens_by_id"]

"""What an agent in a cluster does for nodes joining: it claims the cluster if the store is new (and then makes
and prints the first bootstrap token), lets its API's join endpoint admit token holders, and advertises itself
over DNS-SD so `meshd agent --join TOKEN` finds it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from meshd.cluster import bootstrap, tokens
from meshd.cluster.discovery import (
    ClusterAdvertiser,
    Interfaces,
    advert_interfaces,
    advertised_addresses,
    loopback_only,
)
from meshd.cluster.joinca import StateDirIssuer, certificate_sha256
from meshd.cluster.storecreds import StoreCredentials, read_credentials
from meshd.store import ObjectStore, StoreError
from meshd.store.etcdtls import StoreTls

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JoinSetup:
    store: ObjectStore
    store_url: str
    node: str
    state_dir: Path
    api_host: str
    api_port: int
    interfaces: Interfaces | None  # None: --mdns off (no advert; joining nodes need --server)
    token_ttl: float = tokens.DEFAULT_TTL
    host_addresses: Sequence[str] = ()  # the host's IPv4 addresses (where a wildcard API is reached)
    tls_certificate: Path | None = None  # the API's serving certificate (PEM): joining nodes pin it
    issue: Issuer | None = None  # signs a joining node's CSR; None: a CA in STATE/cluster-ca (StateDirIssuer)
    store_tls: StoreTls = StoreTls()  # this agent's etcd TLS files: handed to joining nodes as they are


Issuer = Callable[[str, bytes], tuple[bytes, bytes]]  # (node name, CSR PEM) -> (CA PEM, certificate PEM)


class JoinEndpoint(Protocol):
    """What the API's join endpoint (meshd.api.join.JoinApi) needs to know."""

    store_url: str | None
    server: str | None
    certificate_sha256: str | None
    issue: Issuer | None
    store_credentials: StoreCredentials | None


async def serve_joins(setup: JoinSetup, join: JoinEndpoint) -> ClusterAdvertiser | None:
    """Sets up the join endpoint; the advert to start (it takes a second or two: the caller runs it aside) and
    close at shutdown (None if there is none)."""
    addresses = advertised_addresses(setup.api_host, setup.host_addresses)
    server = f"https://{addresses[0]}:{setup.api_port}"
    join.store_url, join.server = setup.store_url, server
    join.issue = setup.issue or StateDirIssuer(setup.state_dir / "cluster-ca")
    if setup.store_tls.given:
        try:
            join.store_credentials = await asyncio.to_thread(read_credentials, setup.store_tls)
        except OSError as error:
            log.warning("cannot read the store's TLS files to hand to joining nodes (they will not reach etcd): %s",
                        error)
    if setup.tls_certificate is not None:
        join.certificate_sha256 = await asyncio.to_thread(certificate_sha256, setup.tls_certificate)
    try:
        claim = await bootstrap.claim_cluster(setup.store, setup.node)
        if claim.first:
            token, expires = await bootstrap.create_token(setup.store, ttl=setup.token_ttl,
                                                          description="the first token, made with the cluster")
            until = f"valid until {tokens.rfc3339(expires)}" if expires is not None else "valid for ever"
            log.info("cluster %s created; to add a node, run on it (the token is %s):\n\n    %s\n\n"
                     "  (or without discovery: %s)\n  more tokens: meshd token create [--ttl 1h]", claim.cluster_id,
                     until, tokens.join_command(token), tokens.join_command(token, server))
            if loopback_only(setup.api_host):
                log.warning("the API listens on %s only: other machines cannot join through this agent (start it "
                            "with --api 0.0.0.0:%d, or its LAN address)", setup.api_host, setup.api_port)
    except (StoreError, ValueError) as error:
        log.warning("cannot claim the cluster or make its first join token: %s", error)
        return None
    if setup.interfaces is None:
        return None
    return ClusterAdvertiser(interfaces=advert_interfaces(setup.api_host, setup.interfaces), cluster_id=claim.cluster_id, node=setup.node,
                             addresses=addresses, port=setup.api_port)


__all__ = ["JoinSetup", "serve_joins"]

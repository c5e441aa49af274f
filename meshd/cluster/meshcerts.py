"""The agent's side of mutual TLS between nodes, on the shared store: the cluster CA made once (a create-if-absent
write: of two agents starting at once, one CA wins and both use it), this node's certificate issued from it and
issued again at 2/3 of its life (or when revoked, or its addresses change), written for the sidecar into
STATE/mesh (0600: ca.pem, node.pem, node-key.pem, trust.json); the Node annotated with its mesh port and its
certificates' serials; and a deleted Node's serials added to the revocation list (kube-system/meshd-revoked)."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from meshd.cluster.pki import (
    CA_SECRET,
    DEFAULT_VALIDITY,
    MESH_PORT_ANNOTATION,
    REVOKED_CONFIGMAP,
    SERIALS_ANNOTATION,
    SYSTEM_NAMESPACE,
    ClusterCA,
    ca_from_secret,
    ca_secret,
    issue_node_certificate,
    key_pem,
    make_cluster_ca,
    parse_serials,
    reissue_reason,
    revoked_serials,
    rotation_time,
    serials_annotation,
    with_revoked,
)
from meshd.state import write_private
from meshd.store import AlreadyExists, Conflict, Create, NotFound, StoreError, Update
from meshd.store.api import Store

log = logging.getLogger(__name__)

CHECK_EVERY = 5.0  # seconds between checks of the certificate, the annotations and the trust file


def write_identity(directory: Path, *, ca: x509.Certificate, cert: x509.Certificate,
                   key: ec.EllipticCurvePrivateKey) -> None:
    """The files the sidecar reads (blocking); the key before the certificate, which the sidecar watches."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(directory / "ca.pem", ca.public_bytes(serialization.Encoding.PEM))
    write_private(directory / "node-key.pem", key_pem(key))
    write_private(directory / "node.pem", cert.public_bytes(serialization.Encoding.PEM))


def write_trust(directory: Path, *, revoked: Iterable[int], nodes: Iterable[str] | None) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = {"revoked": sorted(f"{s:x}" for s in revoked), "nodes": None if nodes is None else sorted(nodes)}
    write_private(directory / "trust.json", json.dumps(body, indent=1).encode())


def read_certificate(directory: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate((directory / "node.pem").read_bytes())
    except (OSError, ValueError):
        return None


async def ensure_ca(store: Store, *, now: datetime.datetime | None = None) -> ClusterCA:
    """The cluster CA from the store, made (create-if-absent) when there is none; StoreError if unreachable,
    ValueError if the Secret is damaged."""
    current = store.get("Secret", SYSTEM_NAMESPACE, CA_SECRET)
    if current is None:
        ca = await asyncio.to_thread(make_cluster_ca, now or datetime.datetime.now(datetime.UTC))
        try:
            await store.transaction([Create(ca_secret(ca))])
            log.info("made the cluster CA (Secret %s/%s)", SYSTEM_NAMESPACE, CA_SECRET)
            return ca
        except AlreadyExists:  # another agent made it first: theirs is the one
            current = store.get("Secret", SYSTEM_NAMESPACE, CA_SECRET)
            if current is None:
                raise StoreError("the cluster CA was made by another agent but cannot be read yet") from None
    return ca_from_secret(current)


async def revoke_node(store: Store, node: Mapping[str, Any], *, now: datetime.datetime | None = None) -> bool:
    """Adds a deleted Node's certificate serials to the revocation list; whether this agent wrote it."""
    name = str(node["metadata"]["name"])
    serials = parse_serials(((node["metadata"].get("annotations")) or {}).get(SERIALS_ANNOTATION, ""))
    for _ in range(5):
        current = store.get("ConfigMap", SYSTEM_NAMESPACE, REVOKED_CONFIGMAP)
        fresh = with_revoked(current, name, serials, now=now or datetime.datetime.now(datetime.UTC))
        if fresh is None:
            return False
        try:
            await store.transaction([Update(fresh) if current is not None else Create(fresh)])
        except (Conflict, AlreadyExists, NotFound):
            continue  # another agent wrote it meanwhile: read again
        log.info("node %s deleted: revoked its certificates %s", name, ", ".join(f"{s:x}" for s, _ in serials))
        return True
    return False


class NodeCertificates:
    """Keeps this node's mesh identity current (run it supervised for the agent's life)."""

    def __init__(self, store: Store, *, node_name: str, addresses: Callable[[], list[str]], directory: Path,
                 mesh_port: int, validity: datetime.timedelta = DEFAULT_VALIDITY,
                 clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)) -> None:
        self.store = store
        self.node_name = node_name
        self.addresses = addresses
        self.directory = directory
        self.mesh_port = mesh_port
        self.validity = validity
        self.clock = clock
        self.ca: ClusterCA | None = None
        self.cert: x509.Certificate | None = None
        self._trust: tuple[frozenset[int], frozenset[str]] | None = None
        self.wake = asyncio.Event()
        self.failing = ""
        self.node_deleted = False  # this node's Node was deleted (kubectl delete node): no certificate issued again

    async def run(self) -> None:
        watcher = asyncio.create_task(self._follow(), name="mesh certificates: follow nodes")
        try:
            while True:
                try:
                    await self.step()
                    if self.failing:
                        log.info("mesh certificates: working again")
                    self.failing = ""
                except (StoreError, ValueError, OSError) as error:
                    if str(error) != self.failing:
                        log.warning("mesh certificates: %s (trying again)", error)
                    self.failing = str(error)
                delay = CHECK_EVERY
                if self.cert is not None:
                    delay = min(delay, max((rotation_time(self.cert) - self.clock()).total_seconds(), 0.1))
                self.wake.clear()
                try:
                    async with asyncio.timeout(delay):  # not wait_for: 3.11's may swallow a cancellation
                        await self.wake.wait()
                except TimeoutError:
                    pass
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def step(self) -> None:
        """One check: CA, own certificate, own Node's annotations, trust file."""
        if self.node_deleted:
            return
        if self.ca is None:
            self.ca = await ensure_ca(self.store)
        ca = self.ca
        if self.cert is None:
            self.cert = await asyncio.to_thread(read_certificate, self.directory)
        revoked = revoked_serials(self.store.get("ConfigMap", SYSTEM_NAMESPACE, REVOKED_CONFIGMAP))
        addresses = self.addresses()
        now = self.clock()
        reason = reissue_reason(self.cert, ca=ca, node_name=self.node_name, addresses=addresses, revoked=revoked,
                                now=now)
        if reason is not None:
            key = ec.generate_private_key(ec.SECP256R1())
            cert = issue_node_certificate(ca, self.node_name, addresses, public_key=key.public_key(),
                                          validity=self.validity, now=now)
            await asyncio.to_thread(write_identity, self.directory, ca=ca.cert, cert=cert, key=key)
            self.cert = cert
            log.info("mesh certificate %x for node %s issued (%s), valid until %s", cert.serial_number,
                     self.node_name, reason, cert.not_valid_after_utc.isoformat(timespec="seconds"))
        await self._annotate(now)
        nodes = frozenset(str(n["metadata"]["name"]) for n in self.store.list("Node"))
        trust = (frozenset(revoked), nodes | {self.node_name})
        if trust != self._trust:
            await asyncio.to_thread(write_trust, self.directory, revoked=trust[0], nodes=trust[1])
            self._trust = trust

    async def _annotate(self, now: datetime.datetime) -> None:
        """The Node says where its gateway listens and which certificates it holds (for revocation)."""
        node = self.store.get("Node", "", self.node_name)
        if node is None or self.cert is None:
            return  # the heartbeat registers it; the next check annotates
        annotations = dict(node["metadata"].get("annotations") or {})
        wanted = {MESH_PORT_ANNOTATION: str(self.mesh_port),
                  SERIALS_ANNOTATION: serials_annotation(annotations.get(SERIALS_ANNOTATION, ""), self.cert, now=now)}
        if all(annotations.get(k) == v for k, v in wanted.items()):
            return
        try:
            await self.store.transaction([Update({**node, "metadata": {**node["metadata"],
                                                                       "annotations": {**annotations, **wanted}}})])
        except (Conflict, NotFound):
            self.wake.set()  # the heartbeat wrote it meanwhile: again at once

    async def _follow(self) -> None:
        """Node deletions revoke; Node and revocation-list changes wake the check."""
        since = self.store.resource_version
        while True:
            try:
                async for event in self.store.watch(from_resource_version=since):
                    since = event.resource_version
                    kind = event.object.get("kind")
                    name = event.object["metadata"].get("name")
                    if kind == "Node":
                        if event.type == "DELETED":
                            self.node_deleted = self.node_deleted or name == self.node_name
                            try:
                                await revoke_node(self.store, event.object)
                            except StoreError as error:
                                log.warning("cannot revoke the certificates of deleted node %s: %s", name, error)
                        self.wake.set()
                    elif kind == "ConfigMap" and name == REVOKED_CONFIGMAP:
                        self.wake.set()
            except StoreError:  # Expired: from now on
                since = self.store.resource_version
                await asyncio.sleep(1)


class ClusterCaIssuer:
    """Signs a joining node's CSR with the cluster CA in the store (the join endpoint's issuer, called in a thread):
    (node name, CSR PEM) -> (CA PEM, certificate PEM); the node's own agent issues its next ones itself."""

    def __init__(self, store: Store, *, validity: datetime.timedelta = DEFAULT_VALIDITY) -> None:
        self.store = store
        self.validity = validity

    def __call__(self, node_name: str, csr_pem: bytes) -> tuple[bytes, bytes]:
        from meshd.cluster.joinca import load_csr  # CsrError (a 400) for a CSR that does not parse or verify

        secret = self.store.get("Secret", SYSTEM_NAMESPACE, CA_SECRET)
        if secret is None:
            raise StoreError("the cluster CA is not made yet (the agent makes it at start): try again")
        ca = ca_from_secret(secret)
        cert = issue_node_certificate(ca, node_name, (), csr=load_csr(csr_pem), validity=self.validity)
        return ca.cert_pem(), cert.public_bytes(serialization.Encoding.PEM)


__all__ = ["ClusterCaIssuer", "NodeCertificates", "ensure_ca", "read_certificate", "revoke_node", "write_identity", "write_trust"]

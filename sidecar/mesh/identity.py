"""This node's mesh identity, as the agent writes it into its state dir (`--mesh-dir`): `ca.pem` (the cluster
CA), `node.pem` and `node-key.pem` (this node's certificate, issued again at 2/3 of its life), and `trust.json`
(`{"revoked": [hex serials], "nodes": [names]}`). Reloaded when a file changes: new connections use the new
certificate, open ones keep theirs (a TLS session is not renegotiated)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from meshd.model.nodeidentity import peer_refusal

from .stats import MESH_STATS
from .wire import ALPNS

log = logging.getLogger(__name__)

FILES = ("ca.pem", "node.pem", "node-key.pem", "trust.json")
# meshd/2 offered (a stream's connection reused for the next: sidecar/mesh/wire.py); MESHD_MESH_REUSE=0 offers
# meshd/1 only (a TLS connection per stream, as before: the benchmark's comparison)
REUSE = os.environ.get("MESHD_MESH_REUSE", "1") != "0"


@dataclass(frozen=True)
class Contexts:
    server: ssl.SSLContext | None  # None: plaintext (the bench's comparison only)
    client: ssl.SSLContext | None
    serial: int = 0
    expiry: float = 0.0  # the certificate's notAfter, seconds since the epoch
    revoked: frozenset[int] = frozenset()
    nodes: frozenset[str] | None = None
    stamp: tuple[float, ...] = field(default=())


def _contexts(directory: Path) -> Contexts:
    """Reads the files and builds both contexts: TLS 1.3 only, the peer's certificate required and verified
    against the cluster CA (blocking; OSError, ssl.SSLError or ValueError when the files are not usable)."""
    stamp = tuple(os.stat(directory / name).st_mtime_ns for name in FILES if (directory / name).exists())
    ca, cert, key = directory / "ca.pem", directory / "node.pem", directory / "node-key.pem"
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname: the gateway's node name
    for context in (server, client):
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(ca))
        context.load_cert_chain(str(cert), str(key))
        context.set_alpn_protocols(ALPNS if context is server or REUSE else ALPNS[1:])
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    revoked: frozenset[int] = frozenset()
    nodes: frozenset[str] | None = None
    trust = directory / "trust.json"
    if trust.exists():
        data = json.loads(trust.read_text())
        revoked = frozenset(int(s, 16) for s in data.get("revoked") or ())
        nodes = frozenset(str(n) for n in data["nodes"]) if data.get("nodes") is not None else None
    return Contexts(server, client, loaded.serial_number, loaded.not_valid_after_utc.timestamp(), revoked, nodes,
                    stamp)


class MeshIdentity:
    """The current contexts, polled for changes (`run`)."""

    def __init__(self, directory: Path | None, *, plaintext: bool = False, poll: float = 1.0) -> None:
        self.directory = directory
        self.plaintext = plaintext or directory is None
        self.poll = poll
        self.current: Contexts | None = Contexts(None, None) if self.plaintext else None
        self.error = ""
        self.on_change: list = []  # callables: the gateway swaps its acceptor's context

    def read(self) -> Contexts | None:
        """Fresh contexts when the files changed and are usable, else None (blocking: call it in a thread)."""
        if self.plaintext or self.directory is None:
            return None
        try:
            stamp = tuple(os.stat(self.directory / n).st_mtime_ns for n in FILES if (self.directory / n).exists())
            if self.current is not None and stamp == self.current.stamp:
                return None
            fresh = _contexts(self.directory)
        except (OSError, ssl.SSLError, ValueError, KeyError, TypeError) as error:
            if str(error) != self.error:
                log.warning("mesh identity in %s not usable (yet): %s", self.directory, error)
            self.error = str(error)
            return None
        self.error = ""
        return fresh

    def use(self, fresh: Contexts) -> None:
        """Makes `fresh` current (on the loop): new connections, both ways, use it from now on."""
        if self.current is None or fresh.serial != self.current.serial:
            log.info("mesh identity: certificate %x from %s", fresh.serial, self.directory)
        self.current = fresh
        MESH_STATS.expiry = fresh.expiry
        for callback in list(self.on_change):
            callback(fresh)

    async def run(self) -> None:
        while True:
            fresh = await asyncio.to_thread(self.read)
            if fresh is not None:
                self.use(fresh)
            await asyncio.sleep(self.poll)

    def refusal(self, der: bytes | None) -> str | None:
        """Why the peer with this certificate (DER, verified by the handshake) is refused, or None."""
        current = self.current
        if self.plaintext:
            return None
        if current is None:
            return "this node has no mesh identity yet"
        if not der:
            return "no client certificate"
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            return "unreadable certificate"
        return peer_refusal(cert, revoked=current.revoked, nodes=current.nodes)

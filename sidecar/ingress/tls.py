"""TLS for the Ingress's HTTPS listener: one certificate per kubernetes.io/tls Secret, chosen by SNI
(SSLContext.sni_callback), ALPN h2 and http/1.1. A Secret that changes gets a new context: new handshakes use
it, connections already established keep their session. A certificate that does not load is logged (never its
data) and the previous one stays in use."""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
from collections.abc import Callable
from typing import Any

from meshd.model.ingress import IngressTable, host_matches

log = logging.getLogger(__name__)
ALPN = ["h2", "http/1.1"]
_PRIVATE_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None  # memory, when there is one


def server_context(*, h2: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(ALPN if h2 else ALPN[1:])
    return ctx


def load_pem(ctx: ssl.SSLContext, cert: str, key: str) -> None:
    """Load a PEM certificate (chain) and key into `ctx` (through a 0600 file removed at once)."""
    fd, path = tempfile.mkstemp(prefix="meshd-ingress-", suffix=".pem", dir=_PRIVATE_DIR)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(cert.strip() + "\n" + key.strip() + "\n")
        ctx.load_cert_chain(path)
    finally:
        os.unlink(path)


def pick_secret(tls: list[tuple[str, str]], server_name: str | None) -> str | None:
    """The Secret for an SNI name: an exact host first, then a wildcard one; None: the default certificate."""
    if not server_name:
        return None
    name = server_name.lower().rstrip(".")
    for exact in (True, False):
        for host, secret in tls:
            if host and host.startswith("*.") != exact and host_matches(host, name):
                return secret
    return None


class Certificates:
    """The listener's SSLContext (`context`, holding the default certificate) and two per Secret: one offering
    ALPN h2 (for hosts whose backends all speak HTTP/2: the data plane passes HTTP/2 through, it does not
    translate it to HTTP/1), one offering http/1.1 only. `speaks_h2(name)` tells which a host gets."""

    def __init__(self) -> None:
        self.context = server_context(h2=False)
        self.context.sni_callback = self._sni
        self.speaks_h2: Callable[[str], bool] = lambda _name: False
        self.by_secret: dict[str, tuple[ssl.SSLContext, ssl.SSLContext]] = {}  # (http/1.1 only, h2 too)
        self.loaded: dict[str, tuple[str, str]] = {}  # what each context holds
        self.hosts: list[tuple[str, str]] = []  # (host, secret) in the Ingresses' order
        self.default: str | None = None  # the Secret whose certificate the listener's context holds
        self.errors: dict[str, str] = {}

    @property
    def ready(self) -> bool:
        return self.default is not None

    def update(self, table: IngressTable) -> None:
        for secret, pem in table.certificates.items():
            if self.loaded.get(secret) == pem:
                continue
            pair = (server_context(h2=False), server_context(h2=True))
            try:
                for ctx in pair:
                    load_pem(ctx, *pem)
            except (ssl.SSLError, ValueError, OSError) as error:
                self.errors[secret] = str(error)
                log.error("Secret %s: cannot load its certificate and key (%s)%s", secret, error,
                          "; the previous one stays in use" if secret in self.loaded else "")
                continue
            self.errors.pop(secret, None)
            self.by_secret[secret] = pair
            self.loaded[secret] = pem
            log.info("Secret %s: certificate loaded", secret)
            if self.default == secret:
                self.default = None  # reloaded below
        self.hosts = [(h, t.secret) for t in table.tls for h in t.hosts]
        default = next((t.secret for t in table.tls if not t.hosts and t.secret in self.loaded), None) or next(
            (t.secret for t in table.tls if t.secret in self.loaded), None)
        if default is not None and default != self.default:
            load_pem(self.context, *self.loaded[default])  # new handshakes; established sessions keep theirs
            self.default = default

    def _sni(self, sslobj: Any, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        secret = pick_secret(self.hosts, server_name) or self.default
        pair = self.by_secret.get(secret) if secret is not None else None
        if pair is not None:
            name = (server_name or "").lower().rstrip(".")
            sslobj.context = pair[1] if name and self.speaks_h2(name) else pair[0]

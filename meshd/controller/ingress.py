"""The agent's side of Ingress: every Ingress of class `meshd` folded into one IngressTable for the node
sidecar (pure: build_table), what an Ingress names that does not exist (backend_problems), and the
certificates of the Secrets its TLS entries name, checked before the sidecar gets them."""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from meshd.model.ingress import (
    Ingress,
    IngressBackend,
    IngressRoute,
    IngressTable,
    TlsEntry,
    host_matches,
)
from meshd.model.objects import Service

Created = float


@dataclass(frozen=True)
class Conflict:
    """`loser` claims a host and path that `winner` (older) already has."""

    loser: str  # "namespace/name"
    winner: str
    host: str
    path: str


def _redirects(ingress: Ingress, host: str) -> bool:
    if ingress.ssl_redirect is not None:
        return ingress.ssl_redirect
    return any(not t.hosts or any(host_matches(h, host) or h == host for h in t.hosts) for t in ingress.tls) \
        if host else any(not t.hosts for t in ingress.tls)


def build_table(ingresses: Iterable[tuple[Ingress, Created]],
                certificates: Mapping[str, tuple[str, str]] | None = None) -> tuple[IngressTable, list[Conflict]]:
    """The routing table of the Ingresses meshd serves, oldest first: a host+path (and path type) claimed twice
    goes to the oldest Ingress (creationTimestamp, then namespace/name), as Kubernetes controllers resolve it;
    the first defaultBackend wins likewise. `certificates`: the Secrets' (cert, key) to include."""
    ordered = sorted(((i, c) for i, c in ingresses if i.served),
                     key=lambda ic: (ic[1], ic[0].metadata.namespace, ic[0].metadata.name))
    routes: list[IngressRoute] = []
    owner: dict[tuple[str, str, str], str] = {}
    conflicts: list[Conflict] = []
    default: IngressRoute | None = None
    tls: list[TlsEntry] = []
    for ingress, _ in ordered:
        who = f"{ingress.metadata.namespace}/{ingress.metadata.name}"
        for rule in ingress.rules:
            for p in rule.paths:
                claim = (rule.host, p.path, p.path_type)
                if claim in owner and owner[claim] != who:
                    conflicts.append(Conflict(who, owner[claim], rule.host, p.path))
                    continue
                owner.setdefault(claim, who)
                routes.append(IngressRoute(rule.host, p.path, p.path_type, p.backend, who,
                                           _redirects(ingress, rule.host)))
        if ingress.default_backend is not None:
            if default is None:
                default = IngressRoute("", "/", "Prefix", ingress.default_backend, who, _redirects(ingress, ""))
            elif default.ingress != who:
                conflicts.append(Conflict(who, default.ingress, "*", "defaultBackend"))
        tls.extend(ingress.tls)
    wanted = {t.secret for t in tls}
    certs = {k: v for k, v in (certificates or {}).items() if k in wanted}
    return IngressTable(routes=tuple(routes), default=default, tls=tuple(tls), certificates=certs), conflicts


def backend_problems(ingress: Ingress, service: Callable[[str, str], Service | None]) -> list[str]:
    """Backends naming a Service or a Service port that does not exist (each answers 503 until it does)."""
    problems = []
    for b in dict.fromkeys(ingress.backends()):
        svc = service(b.namespace, b.service)
        if svc is None:
            problems.append(f'backend Service "{b.namespace}/{b.service}" not found (answers 503 until it exists)')
        elif not _has_port(svc, b):
            problems.append(f'backend Service "{b.namespace}/{b.service}" has no port {b.port} (answers 503)')
    return problems


def _has_port(svc: Service, backend: IngressBackend) -> bool:
    if isinstance(backend.port, int):
        return any(p.port == backend.port for p in svc.ports)
    return any(p.name == backend.port for p in svc.ports)


def check_certificate(cert: str, key: str) -> str | None:
    """None if the PEM certificate and key load together (as the sidecar will load them), else why not."""
    fd, path = tempfile.mkstemp(prefix="meshd-tls-", suffix=".pem")
    try:
        with os.fdopen(fd, "w") as handle:  # 0600, removed at once: the key never stays on disk
            handle.write(cert.strip() + "\n" + key.strip() + "\n")
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(path)
    except (ssl.SSLError, ValueError) as error:
        return f"invalid certificate or key: {error}"
    finally:
        os.unlink(path)
    return None


def listen_address(value: str | None, external: str, port: int) -> tuple[str, int] | None:
    """--ingress-http / --ingress-https: "off", "ADDR:PORT", ":PORT", "PORT", or None (EXTERNAL:port)."""
    if value is None:
        return external, port
    if value.strip().lower() == "off":
        return None
    host, sep, text = value.strip().rpartition(":")
    if not sep:
        host, text = "", value.strip()
    try:
        number = int(text)
    except ValueError:
        raise ValueError(f'expected ADDR:PORT or "off", got "{value}"') from None
    if not 0 < number < 65536:
        raise ValueError(f"port {number} is out of range")
    return (host.strip("[]") or external), number

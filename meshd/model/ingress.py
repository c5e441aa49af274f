"""Ingress as the data plane sees it: the agent folds every Ingress of class `meshd` into one routing table
(conflicts resolved, oldest first) and sends it to the node sidecar, which routes by it
(sidecar/ingress/routing.py). Shared by agent and sidecar, so it lives in meshd.model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

INGRESS_CLASS = "meshd"
INGRESS_CONTROLLER = "meshd.io/ingress"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
SSL_REDIRECT_ANNOTATIONS = ("meshd.io/ssl-redirect", "nginx.ingress.kubernetes.io/ssl-redirect")
PATH_TYPES = ("Exact", "Prefix", "ImplementationSpecific")


@dataclass(frozen=True)
class IngressBackend:
    """A Service and its port (a number or a port name)."""

    namespace: str
    service: str
    port: int | str

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.service}:{self.port}"


@dataclass(frozen=True)
class IngressRoute:
    """One path of one rule: host ("" for every host, "*.example.com" one label), path and its type."""

    host: str
    path: str
    path_type: str  # Exact or Prefix (ImplementationSpecific is treated as Prefix)
    backend: IngressBackend
    ingress: str  # "namespace/name" of the Ingress it comes from
    ssl_redirect: bool = False  # a plain HTTP request is redirected to HTTPS

    def to_json(self) -> dict[str, Any]:
        b = self.backend
        return {"host": self.host, "path": self.path, "pathType": self.path_type, "ingress": self.ingress,
                "sslRedirect": self.ssl_redirect,
                "backend": {"namespace": b.namespace, "service": b.service, "port": b.port}}

    @staticmethod
    def from_json(data: dict[str, Any]) -> IngressRoute:
        b = data["backend"]
        return IngressRoute(host=str(data.get("host", "")), path=str(data.get("path", "/")),
                            path_type=str(data.get("pathType", "Prefix")), ingress=str(data.get("ingress", "")),
                            ssl_redirect=bool(data.get("sslRedirect", False)),
                            backend=IngressBackend(str(b["namespace"]), str(b["service"]), b["port"]))


@dataclass(frozen=True)
class TlsEntry:
    """Hosts ("" entries none: the default certificate) served with the certificate of a Secret."""

    hosts: tuple[str, ...]
    secret: str  # "namespace/name"


@dataclass(frozen=True)
class IngressTable:
    """Everything the node sidecar needs to serve Ingresses. `certificates` maps a Secret ("ns/name") to its
    (certificate PEM, key PEM): only the Secrets the TLS entries name."""

    routes: tuple[IngressRoute, ...] = ()
    default: IngressRoute | None = None  # the defaultBackend (host "", path "/")
    tls: tuple[TlsEntry, ...] = ()
    certificates: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "Ingress",
            "routes": [r.to_json() for r in self.routes],
            "default": self.default.to_json() if self.default is not None else None,
            "tls": [{"hosts": list(t.hosts), "secret": t.secret} for t in self.tls],
            "certificates": {k: {"cert": c, "key": k2} for k, (c, k2) in self.certificates.items()},
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> IngressTable:
        default = data.get("default")
        return IngressTable(
            routes=tuple(IngressRoute.from_json(r) for r in data.get("routes") or ()),
            default=IngressRoute.from_json(default) if default else None,
            tls=tuple(TlsEntry(tuple(t.get("hosts") or ()), str(t["secret"])) for t in data.get("tls") or ()),
            certificates={k: (str(v["cert"]), str(v["key"])) for k, v in (data.get("certificates") or {}).items()},
        )


def host_matches(pattern: str, host: str) -> bool:
    """Kubernetes' host match: exact, or `*.example.com` matching exactly one more label."""
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return host.endswith(suffix) and "." not in host[: -len(suffix)] and len(host) > len(suffix)
    return pattern == host

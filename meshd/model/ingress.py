"""Ingress as the data plane sees it: the agent folds every Ingress of class `meshd` into one routing table
(conflicts resolved, oldest first) and sends it to the node sidecar, which routes by it
(sidecar/ingress/routing.py). Shared by agent and sidecar, so it lives in meshd.model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshd.model.objects import ObjectMeta

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


# --- the Ingress object (networking.k8s.io/v1), as manifests/ingress.py reads it --------------------------


@dataclass(frozen=True)
class IngressPath:
    path: str
    path_type: str
    backend: IngressBackend


@dataclass(frozen=True)
class IngressRule:
    host: str  # "" for every host
    paths: tuple[IngressPath, ...]


@dataclass(frozen=True)
class Ingress:
    metadata: ObjectMeta
    class_name: str | None  # spec.ingressClassName (or the kubernetes.io/ingress.class annotation); None: default
    rules: tuple[IngressRule, ...] = ()
    default_backend: IngressBackend | None = None
    tls: tuple[TlsEntry, ...] = ()  # secret: "namespace/name"
    ssl_redirect: bool | None = None  # the annotation; None: redirect when a TLS entry covers the host
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    kind: str = "Ingress"
    api_version: str = "networking.k8s.io/v1"

    @property
    def served(self) -> bool:
        """Is it meshd's to serve (class meshd, or no class: meshd's is the default)?"""
        return self.class_name in (None, INGRESS_CLASS)

    def backends(self) -> list[IngressBackend]:
        found = [p.backend for rule in self.rules for p in rule.paths]
        return found + ([self.default_backend] if self.default_backend is not None else [])

"""networking.k8s.io/v1 Ingress specs: rules (hosts, wildcard hosts, paths), defaultBackend, tls; a Service
backend by port number or name. Resource backends are not supported (an error naming the field)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshd.manifests import names
from meshd.manifests.errors import FieldPath
from meshd.manifests.reader import MISSING, DocumentReader
from meshd.model.ingress import (
    PATH_TYPES,
    SSL_REDIRECT_ANNOTATIONS,
    Ingress,
    IngressBackend,
    IngressPath,
    IngressRule,
    TlsEntry,
)
from meshd.model.objects import ObjectMeta

_SPEC: FieldPath = ("spec",)
CLASS_ANNOTATION = "kubernetes.io/ingress.class"  # deprecated, still honoured (as controllers do)


def check_host(host: str) -> str | None:
    """A rule's host: a DNS subdomain, optionally `*.` + one (a wildcard of exactly one label); not an IP."""
    name = host[2:] if host.startswith("*.") else host
    if all(part.isdigit() for part in host.split(".")):
        return "must be a DNS name, not an IP address"
    problem = names.dns1123_subdomain(name)
    if problem:
        return f"{problem} (a wildcard is allowed only as the first label: *.example.com)"
    return None


def read_ingress(reader: DocumentReader, doc: Mapping[str, Any], metadata: ObjectMeta) -> Ingress:
    spec_value = reader.get(doc, "spec", ())
    spec = {} if spec_value is MISSING else reader.mapping(spec_value, _SPEC)
    reader.check_fields(spec, _SPEC, known=("ingressClassName", "defaultBackend", "rules", "tls"))
    class_name = reader.string(spec, "ingressClassName", _SPEC) or metadata.annotations.get(CLASS_ANNOTATION)
    default = None
    if reader.get(spec, "defaultBackend", _SPEC) is not MISSING:
        default = _read_backend(reader, spec["defaultBackend"], _SPEC + ("defaultBackend",), metadata.namespace)
    rules: list[IngressRule] = []
    for i, item in enumerate(reader.sequence(spec, "rules", _SPEC)):
        path = _SPEC + ("rules", i)
        rule = reader.mapping(item, path)
        reader.check_fields(rule, path, known=("host", "http"))
        host = _read_host(reader, rule, "host", path)
        paths: list[IngressPath] = []
        http_value = reader.get(rule, "http", path)
        if http_value is not MISSING:
            http = reader.mapping(http_value, path + ("http",))
            reader.check_fields(http, path + ("http",), known=("paths",))
            for j, p in enumerate(reader.sequence(http, "paths", path + ("http",), required=True)):
                paths.append(_read_path(reader, p, path + ("http", "paths", j), metadata.namespace))
        rules.append(IngressRule(host=host, paths=tuple(paths)))
    if not rules and default is None:
        raise reader.fail(_SPEC, "either defaultBackend or rules must be specified")
    tls: list[TlsEntry] = []
    for i, item in enumerate(reader.sequence(spec, "tls", _SPEC)):
        path = _SPEC + ("tls", i)
        entry = reader.mapping(item, path)
        reader.check_fields(entry, path, known=("hosts", "secretName"))
        hosts = tuple(reader.sequence(entry, "hosts", path))
        for j, host in enumerate(hosts):
            text = reader.as_string(host, path + ("hosts", j))
            if problem := check_host(text):
                raise reader.fail(path + ("hosts", j), f'invalid host "{text}": {problem}')
        secret = reader.string(entry, "secretName", path, required=True, allow_empty=False)
        reader.check_name(secret, path + ("secretName",), names.dns1123_subdomain)
        tls.append(TlsEntry(tuple(h.lower() for h in hosts), f"{metadata.namespace}/{secret}"))
    return Ingress(metadata=metadata, class_name=class_name, rules=tuple(rules), default_backend=default,
                   tls=tuple(tls), ssl_redirect=_read_ssl_redirect(reader, metadata), raw=doc)


def _read_ssl_redirect(reader: DocumentReader, metadata: ObjectMeta) -> bool | None:
    for key in SSL_REDIRECT_ANNOTATIONS:
        value = metadata.annotations.get(key)
        if value is None:
            continue
        if value.lower() not in ("true", "false"):
            raise reader.fail(("metadata", "annotations", key), f'expected "true" or "false", got "{value}"')
        return value.lower() == "true"
    return None


def _read_host(reader: DocumentReader, obj: Mapping[str, Any], key: str, path: FieldPath) -> str:
    host = reader.string(obj, key, path) or ""
    if host and (problem := check_host(host)):
        raise reader.fail(path + (key,), f'invalid host "{host}": {problem}')
    return host.lower()


def _read_path(reader: DocumentReader, value: Any, path: FieldPath, namespace: str) -> IngressPath:
    item = reader.mapping(value, path)
    reader.check_fields(item, path, known=("path", "pathType", "backend"))
    path_type = reader.string(item, "pathType", path, required=True)
    if path_type not in PATH_TYPES:
        raise reader.fail(path + ("pathType",), f'unsupported value "{path_type}" (supported: {", ".join(PATH_TYPES)})')
    text = reader.string(item, "path", path) or "/"
    if not text.startswith("/"):
        raise reader.fail(path + ("path",), f'must be an absolute path (start with "/"), got "{text}"')
    if path_type != "ImplementationSpecific":
        for bad in ("//", "/./", "/../", "%2f", "%2F", "#"):
            if bad in text or text.endswith(("/..", "/.")):
                raise reader.fail(path + ("path",), f'must not contain "{bad}"')
    backend = _read_backend(reader, reader.get(item, "backend", path, required=True), path + ("backend",), namespace)
    return IngressPath(path=text, path_type="Prefix" if path_type == "ImplementationSpecific" else path_type,
                       backend=backend)


def _read_backend(reader: DocumentReader, value: Any, path: FieldPath, namespace: str) -> IngressBackend:
    backend = reader.mapping(value, path)
    reader.check_fields(backend, path, known=("service",), unsupported=("resource",))
    service = reader.mapping(reader.get(backend, "service", path, required=True), path + ("service",))
    spath = path + ("service",)
    reader.check_fields(service, spath, known=("name", "port"))
    name = reader.string(service, "name", spath, required=True, allow_empty=False)
    reader.check_name(name, spath + ("name",), names.dns1035_label)
    port = reader.mapping(reader.get(service, "port", spath, required=True), spath + ("port",))
    ppath = spath + ("port",)
    reader.check_fields(port, ppath, known=("number", "name"))
    number = reader.integer(port, "number", ppath, minimum=1, maximum=65535)
    port_name = reader.string(port, "name", ppath, allow_empty=False)
    if (number is None) == (port_name is None):
        raise reader.fail(ppath, "exactly one of number or name is required")
    if port_name is not None:
        reader.check_name(port_name, ppath + ("name",), names.iana_svc_name)
    return IngressBackend(namespace, name or "", number if number is not None else port_name or "")

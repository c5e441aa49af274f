"""Ingress manifests (field paths for bad input), the agent's table (oldest wins, class, TLS redirects), the
listen flags, and the sidecar's SNI choice: pure decisions, table-tested."""

from __future__ import annotations

import textwrap

import pytest

from meshd.controller.ingress import backend_problems, build_table, listen_address
from meshd.manifests import ManifestError
from meshd.manifests.loader import load_documents
from meshd.model.ingress import Ingress
from sidecar.ingress.tls import pick_secret

HEAD = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, namespace: shop}\n"
BACKEND = "{service: {name: api, port: {number: 80}}}"


def load(spec: str, head: str = HEAD) -> Ingress:
    (obj,) = load_documents(head + textwrap.dedent(spec)).objects
    assert isinstance(obj, Ingress)
    return obj


def test_a_full_ingress_reads() -> None:
    ing = load(f"""\
        spec:
          ingressClassName: meshd
          defaultBackend: {BACKEND}
          tls: [{{hosts: [a.example.com], secretName: cert}}]
          rules:
          - host: "*.example.com"
            http:
              paths:
              - {{path: /x, pathType: ImplementationSpecific, backend: {{service: {{name: api, port: {{name: http}}}}}}}}
          - http:
              paths: [{{path: /, pathType: Exact, backend: {BACKEND}}}]
        """)
    assert ing.served and ing.default_backend is not None and ing.default_backend.namespace == "shop"
    assert ing.rules[0].host == "*.example.com" and ing.rules[0].paths[0].path_type == "Prefix"
    assert ing.rules[0].paths[0].backend.port == "http" and ing.rules[1].host == ""
    assert ing.tls[0].secret == "shop/cert" and ing.ssl_redirect is None


@pytest.mark.parametrize(("spec", "where"), [
    ("spec: {}", "spec: either defaultBackend or rules"),
    ("spec: {rules: [{host: 'a.*.com'}]}", "spec.rules[0].host"),
    ("spec: {rules: [{host: 10.0.0.1}]}", "spec.rules[0].host"),
    (f"spec: {{rules: [{{http: {{paths: [{{path: x, pathType: Prefix, backend: {BACKEND}}}]}}}}]}}",
     "spec.rules[0].http.paths[0].path"),
    (f"spec: {{rules: [{{http: {{paths: [{{path: /x, backend: {BACKEND}}}]}}}}]}}",
     "spec.rules[0].http.paths[0].pathType"),
    (f"spec: {{rules: [{{http: {{paths: [{{path: /x, pathType: Regex, backend: {BACKEND}}}]}}}}]}}",
     "spec.rules[0].http.paths[0].pathType"),
    ("spec: {defaultBackend: {resource: {kind: Bucket, name: b}}}", "spec.defaultBackend.resource"),
    ("spec: {defaultBackend: {service: {name: a, port: {number: 80, name: http}}}}", "spec.defaultBackend.service.port"),
    ("spec: {defaultBackend: {service: {name: a, port: {number: 0}}}}", "spec.defaultBackend.service.port.number"),
    (f"spec: {{defaultBackend: {BACKEND}, tls: [{{hosts: [a.b]}}]}}", "spec.tls[0].secretName"),
    (f"spec: {{defaultBackend: {BACKEND}, bogus: 1}}", "spec.bogus"),
])
def test_bad_input_names_the_field(spec: str, where: str) -> None:
    with pytest.raises(ManifestError) as error:
        load(spec)
    assert where in str(error.value)


def test_ssl_redirect_annotation_must_be_a_boolean() -> None:
    head = HEAD.replace("namespace: shop}", "namespace: shop, annotations: {meshd.io/ssl-redirect: maybe}}")
    with pytest.raises(ManifestError, match=r"metadata.annotations.meshd.io/ssl-redirect"):
        load(f"spec: {{defaultBackend: {BACKEND}}}", head)


def ingress(name: str, host: str, path: str, service: str, *, tls: bool = False, cls: str | None = None,
            redirect: str | None = None) -> Ingress:
    meta = f"metadata: {{name: {name}" + (f", annotations: {{meshd.io/ssl-redirect: '{redirect}'}}" if redirect else "") + "}\n"
    spec = textwrap.dedent(f"""\
        spec:
          {f'ingressClassName: {cls}' if cls else ''}
          {'tls: [{hosts: [' + host + '], secretName: c}]' if tls else ''}
          rules:
          - host: {host}
            http: {{paths: [{{path: {path}, pathType: Prefix, backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}]}}
        """)
    (obj,) = load_documents("apiVersion: networking.k8s.io/v1\nkind: Ingress\n" + meta + spec).objects
    assert isinstance(obj, Ingress)
    return obj


def test_the_oldest_ingress_wins_a_host_and_path_and_other_classes_are_left_out() -> None:
    old, new = ingress("old", "a.test", "/x", "one"), ingress("new", "a.test", "/x", "two")
    other = ingress("nginx", "b.test", "/", "three", cls="nginx")
    table, conflicts = build_table([(new, 20.0), (old, 10.0), (other, 1.0)])
    assert [(r.host, r.path, r.backend.service) for r in table.routes] == [("a.test", "/x", "one")]
    assert [(c.loser, c.winner) for c in conflicts] == [("default/new", "default/old")]


def test_tls_hosts_redirect_by_default_and_the_annotation_decides_otherwise() -> None:
    cases = [(ingress("a", "a.test", "/", "s", tls=True), True),
             (ingress("b", "b.test", "/", "s"), False),
             (ingress("c", "c.test", "/", "s", tls=True, redirect="false"), False),
             (ingress("d", "d.test", "/", "s", redirect="true"), True)]
    table, _ = build_table([(i, n) for n, (i, _) in enumerate(cases)], {"default/c": ("C", "K")})
    assert [r.ssl_redirect for r in table.routes] == [want for _, want in cases]
    assert table.certificates == {"default/c": ("C", "K")}  # only the Secrets TLS entries name


def test_backend_problems_name_the_missing_service_or_port() -> None:
    from meshd.model.objects import ObjectMeta, Service, ServicePort

    svc = Service(ObjectMeta("one"), {}, (ServicePort(80, 80, "http"),))
    found = {"one": svc}
    assert backend_problems(ingress("a", "a.test", "/", "one"), lambda ns, n: found.get(n)) == []
    assert "not found" in backend_problems(ingress("a", "a.test", "/", "two"), lambda ns, n: found.get(n))[0]
    svc8 = Service(ObjectMeta("one"), {}, (ServicePort(8080, 80, "http"),))
    assert "no port 80" in backend_problems(ingress("a", "a.test", "/", "one"), lambda ns, n: svc8)[0]


@pytest.mark.parametrize(("value", "expected"), [
    (None, ("10.0.0.5", 80)), ("off", None), ("OFF", None), ("127.0.0.1:8080", ("127.0.0.1", 8080)),
    (":8080", ("10.0.0.5", 8080)), ("8443", ("10.0.0.5", 8443)), ("[::1]:80", ("::1", 80)),
])
def test_listen_address(value: str | None, expected: tuple[str, int] | None) -> None:
    assert listen_address(value, "10.0.0.5", 80) == expected


@pytest.mark.parametrize("value", ["x", "1.2.3.4:http", "0", "70000"])
def test_listen_address_refuses(value: str) -> None:
    with pytest.raises(ValueError):
        listen_address(value, "127.0.0.1", 80)


@pytest.mark.parametrize(("name", "secret"), [
    ("a.example.com", "exact"), ("b.example.com", "wild"), ("A.Example.com.", "exact"),
    ("x.b.example.com", None), ("other.test", None), (None, None),
])
def test_sni_picks_an_exact_host_before_a_wildcard(name: str | None, secret: str | None) -> None:
    tls = [("*.example.com", "wild"), ("a.example.com", "exact")]
    assert pick_secret(tls, name) == secret

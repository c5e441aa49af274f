"""The Ingress routing decision, table-tested (Kubernetes' path matching table and precedence)."""

from __future__ import annotations

import pytest

from meshd.model.ingress import IngressBackend, IngressRoute, IngressTable, host_matches
from sidecar.ingress.routing import IngressRouter, request_path


def r(host: str, path: str, kind: str = "Prefix", svc: str = "") -> IngressRoute:
    return IngressRoute(host, path, kind, IngressBackend("default", svc or f"{host or 'any'}{path}{kind[0]}", 80),
                        "default/ing")


def decide(routes: list[IngressRoute], host: str, path: str, default: IngressRoute | None = None) -> str | None:
    hit = IngressRouter(IngressTable(routes=tuple(routes), default=default)).decide(host, path)
    return hit.backend.service if hit else None


# Kubernetes' documented examples (concepts/services-networking/ingress, "Examples")
@pytest.mark.parametrize(("kind", "rule", "path", "match"), [
    ("Prefix", "/", "/anything", True),
    ("Exact", "/foo", "/foo", True),
    ("Exact", "/foo", "/bar", False),
    ("Exact", "/foo", "/foo/", False),
    ("Exact", "/foo/", "/foo", False),
    ("Prefix", "/foo", "/foo", True),
    ("Prefix", "/foo", "/foo/", True),
    ("Prefix", "/foo/", "/foo", True),
    ("Prefix", "/foo/", "/foo/", True),
    ("Prefix", "/aaa/bb", "/aaa/bbb", False),
    ("Prefix", "/aaa/bbb", "/aaa/bbb", True),
    ("Prefix", "/aaa/bbb/", "/aaa/bbb", True),
    ("Prefix", "/aaa/bbb", "/aaa/bbb/", True),
    ("Prefix", "/aaa/bbb", "/aaa/bbb/ccc", True),
    ("Prefix", "/aaa/bbb", "/aaa/bbbxyz", False),
    ("ImplementationSpecific", "/aaa", "/aaa/x", True),
    ("ImplementationSpecific", "/aaa", "/aaax", False),
])
def test_path_matching(kind: str, rule: str, path: str, match: bool) -> None:
    assert (decide([r("", rule, kind, "s")], "h", path) == "s") is match


def test_mixed_paths_longest_prefix_wins_exact_before_prefix() -> None:
    routes = [r("", "/", svc="root"), r("", "/aaa", svc="aaa"), r("", "/aaa/bbb", svc="bbb"),
              r("", "/aaa/bbb", "Exact", svc="bbb-exact")]
    assert decide(routes, "h", "/aaa/bbb") == "bbb-exact"
    assert decide(routes, "h", "/aaa/bbb/c") == "bbb"
    assert decide(routes, "h", "/aaa/ccc") == "aaa"
    assert decide(routes, "h", "/x") == "root"


def test_exact_host_before_wildcard_before_any_host_then_default() -> None:
    routes = [r("foo.example.com", "/api", svc="exact"), r("*.example.com", "/", svc="wild"),
              r("", "/", svc="any")]
    default = r("", "/", svc="default")
    assert decide(routes, "foo.example.com", "/api/v1", default) == "exact"
    assert decide(routes, "foo.example.com", "/other", default) == "wild"  # falls through to the wildcard
    assert decide(routes, "bar.example.com", "/", default) == "wild"
    assert decide(routes, "a.bar.example.com", "/", default) == "any"  # a wildcard matches one label only
    assert decide(routes, "example.com", "/", default) == "any"
    assert decide([r("foo.example.com", "/api", svc="exact")], "foo.example.com", "/x", default) == "default"
    assert decide([r("foo.example.com", "/api", svc="exact")], "other", "/api") is None


@pytest.mark.parametrize(("pattern", "host", "match"), [
    ("*.example.com", "a.example.com", True),
    ("*.example.com", "a.b.example.com", False),
    ("*.example.com", "example.com", False),
    ("*.example.com", ".example.com", False),
    ("a.example.com", "a.example.com", True),
    ("a.example.com", "b.example.com", False),
])
def test_host_matches(pattern: str, host: str, match: bool) -> None:
    assert host_matches(pattern, host) is match


def test_request_path_and_json_round_trip() -> None:
    assert request_path("/a/b?x=/c") == "/a/b"
    assert request_path("") == "/"
    table = IngressTable(routes=(r("a", "/x", "Exact"),), default=r("", "/"))
    assert IngressTable.from_json(table.to_json()) == table


def test_the_listener_answers_what_it_cannot_route() -> None:
    from meshd.model.endpoints import PortInfo, Reset, ServiceInfo, ServiceKey
    from sidecar.ingress.listener import IngressListener
    from sidecar.proxy import ProxyOptions
    from sidecar.services import ServiceTable

    services = ServiceTable()
    key = ServiceKey("default", "web")
    services.apply(Reset(ServiceInfo(key, "10.0.0.1", (PortInfo("http", 80, 8080), PortInfo("admin", 9000, 9000))), ()))
    table = IngressTable(routes=(
        IngressRoute("a.test", "/", "Prefix", IngressBackend("default", "web", 80), "default/i"),
        IngressRoute("a.test", "/admin", "Prefix", IngressBackend("default", "web", "admin"), "default/i"),
        IngressRoute("a.test", "/gone", "Prefix", IngressBackend("default", "web", 81), "default/i"),
        IngressRoute("s.test", "/", "Prefix", IngressBackend("default", "web", 80), "default/s", ssl_redirect=True),
        IngressRoute("n.test", "/", "Prefix", IngressBackend("default", "nothing", 80), "default/n")))
    plain = IngressListener("127.0.0.1", 0, services=services, options=ProxyOptions(), https_port=8443)
    plain.use(IngressRouter(table))
    hit = plain.route(b"a.test:8080", b"/x?y")
    assert hit is not None and hit.service.key == key and hit.port_name == "http"
    assert plain.route(b"a.test", b"/admin/x").port_name == "admin"  # type: ignore[union-attr]
    assert plain.route(b"a.test", b"/gone") is None
    status, why, _ = plain.no_route(b"a.test", b"/gone")
    assert status == 503 and "default/web has no port 81" in why
    assert plain.route(b"s.test", b"/p?q") is None
    status, _, extra = plain.no_route(b"s.test:80", b"/p?q")
    assert status == 308 and extra == b"location: https://s.test:8443/p?q\r\n"
    assert plain.no_route(b"z.test", b"/")[0] == 404
    unknown = plain.route(b"n.test", b"/")  # not known yet: routed, answered 503 after the fail-fast wait
    assert unknown is not None and not unknown.service.exists
    no_https = IngressListener("127.0.0.1", 0, services=services, options=ProxyOptions())
    no_https.use(IngressRouter(table))
    assert no_https.route(b"s.test", b"/") is not None  # nowhere to redirect to: served

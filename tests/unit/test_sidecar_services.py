"""The sidecar's view of Services: folding the update stream, draining removed endpoints, Host routing."""

import random

from meshd.model.endpoints import (
    Add,
    DoesNotExist,
    Endpoint,
    PortInfo,
    Remove,
    Reset,
    ServiceInfo,
    ServiceKey,
)
from sidecar.http import connection_tokens, error_response, forwarded_for, split_host
from sidecar.outlier import OutlierPolicy
from sidecar.proxy import Listener, Route
from sidecar.services import OUT_5XX, OUT_SUCCESS, ServiceTable

KEY = ServiceKey("default", "web")
INFO = ServiceInfo(
    KEY, "127.214.0.1", (PortInfo("http", 80, "http"),), {"meshd.io/lb-algorithm": "least_request"}
)


def ep(name: str, ready: bool = True, port: int = 8080) -> Endpoint:
    return Endpoint(name=name, address="127.213.0.1", ports={"http": port}, ready=ready)


def table(**kw):
    drained: list[tuple[str, str]] = []
    clock = [0.0]
    t = ServiceTable(
        clock=lambda: clock[0],
        rng=random.Random(1),
        on_drained=lambda k, n: drained.append((str(k), n)),
        **kw,
    )
    return t, drained, clock


def test_reset_add_remove_does_not_exist():
    t, drained, _ = table()
    t.apply(Reset(INFO, (ep("a"), ep("b", ready=False))))
    svc = t.services[KEY]
    assert svc.config.algorithm == "least_request"
    assert [e.name for e in svc.available] == ["a"]  # only ready endpoints are balanced
    t.apply(Add(KEY, (ep("b"), ep("c"))))
    assert sorted(e.name for e in svc.available) == ["a", "b", "c"]
    t.apply(Remove(KEY, ("c",)))
    assert sorted(e.name for e in svc.available) == ["a", "b"]
    assert drained == [("default/web", "c")]  # nothing in flight: acked at once
    t.apply(DoesNotExist(KEY))
    assert not svc.exists and svc.available == []


def test_removed_endpoint_gets_no_new_requests_and_is_acked_when_its_last_request_ends():
    t, drained, _ = table()
    t.apply(Reset(INFO, (ep("a"), ep("b"))))
    svc = t.services[KEY]
    a = svc.endpoints["a"]
    a.in_flight = 2
    t.apply(Remove(KEY, ("a",)))
    assert drained == []
    assert all(svc.pick(None) is svc.endpoints["b"] for _ in range(20))
    svc.release(a)
    assert drained == []
    svc.release(a)
    assert drained == [("default/web", "a")]
    assert "a" not in svc.draining


def test_reset_without_an_endpoint_removes_it():
    t, drained, _ = table()
    t.apply(Reset(INFO, (ep("a"), ep("b"))))
    t.apply(Reset(INFO, (ep("b"),)))
    assert drained == [("default/web", "a")]
    assert list(t.services[KEY].endpoints) == ["b"]


def test_retain_after_synced_drops_services_missing_from_the_snapshot():
    t, _, _ = table()
    other = ServiceInfo(ServiceKey("default", "api"), "127.214.0.2", (PortInfo("", 80, 8080),))
    t.apply(Reset(INFO, (ep("a"),)))
    t.apply(Reset(other, (ep("x"),)))
    t.retain({KEY})
    assert t.services[KEY].exists and not t.services[other.key].exists


def test_only_filter_ignores_other_services():
    t, _, _ = table(only=ServiceKey("default", "api"))
    t.apply(Reset(INFO, (ep("a"),)))
    assert KEY not in t.services


def test_outlier_ejection_takes_an_endpoint_out_then_back():
    t, _, clock = table(outlier_policy=OutlierPolicy(consecutive=3, base_ejection=30.0))
    t.apply(Reset(INFO, (ep("a"), ep("b"))))
    svc = t.services[KEY]
    a = svc.endpoints["a"]
    for _ in range(3):
        svc.record(a, OUT_5XX)
    assert svc.stats.ejections == 1
    assert [e.name for e in svc.available] == ["b"]
    clock[0] = 31.0
    assert svc.pick(None) is not None and sorted(e.name for e in svc.available) == ["a", "b"]
    svc.record(a, OUT_SUCCESS)


def test_an_ejected_endpoint_that_turns_ready_again_is_back_at_once():
    """Its container restarted and passed its readiness probe: the old container's failures do not keep the new
    one out for the rest of the ejection (Envoy's successful_active_health_check_uneject_host)."""
    t, _, clock = table(outlier_policy=OutlierPolicy(consecutive=3, base_ejection=30.0))
    t.apply(Reset(INFO, (ep("a"), ep("b"))))
    svc = t.services[KEY]
    for _ in range(3):
        svc.record(svc.endpoints["a"], OUT_5XX)
    assert [e.name for e in svc.available] == ["b"]
    clock[0] = 2.0
    t.apply(Add(KEY, (ep("a", ready=True),)))  # an update that changes nothing about its readiness: still out
    assert [e.name for e in svc.available] == ["b"]
    t.apply(Add(KEY, (ep("a", ready=False),)))
    assert [e.name for e in svc.available] == ["b"]
    t.apply(Add(KEY, (ep("a", ready=True),)))
    assert sorted(e.name for e in svc.available) == ["a", "b"]


def test_target_port_by_name_and_fallbacks():
    t, _, _ = table()
    t.apply(Reset(INFO, (ep("a", port=9000),)))
    svc = t.services[KEY]
    a = svc.endpoints["a"]
    assert svc.target_port(a, "http") == 9000
    assert svc.target_port(a, None) == 9000


def test_host_routing_on_a_shared_listener():
    t, _, _ = table()
    t.apply(Reset(INFO, (ep("a"),)))
    api = ServiceInfo(ServiceKey("shop", "api"), "127.214.0.2", (PortInfo("http", 80, 8080),))
    t.apply(Reset(api, (ep("x"),)))
    web, shop = Route(t.services[KEY], "http"), Route(t.services[api.key], "http")
    listener = Listener("0.0.0.0", 80, routes=[web, shop])
    for host, expected in [
        (b"web", web), (b"web.default:80", web), (b"web.default.svc.cluster.local", web), (b"WEB.default.svc", web),
        (b"127.214.0.1:80", web), (b"api.shop", shop), (b"api.shop.svc.cluster.local.", shop), (b"api", shop),
        (b"other", None), (None, None),
    ]:  # fmt: skip
        assert listener.route(host) == expected, host
    assert listener.allowed_authority(b"web:80") and not listener.allowed_authority(b"example.com")


def test_http_helpers():
    assert split_host(b"[::1]:8080") == b"::1"
    assert split_host(b"Web.Default:80") == b"web.default"
    assert connection_tokens(b"keep-alive, X-Foo") == {b"keep-alive", b"x-foo"}
    assert forwarded_for("::1") == b'"[::1]"'
    assert error_response(503, "no ready endpoints for default/web", close=True).endswith(
        b"connection: close\r\n\r\nno ready endpoints for default/web\n"
    )

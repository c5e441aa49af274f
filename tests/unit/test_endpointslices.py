"""meshd.api.endpointslices: a Service's endpoints as EndpointSlices (pure)."""

from __future__ import annotations

from meshd.api.endpointslices import SERVICE_NAME_LABEL, endpoint_slices, slice_name
from meshd.model.endpoints import Endpoint
from meshd.model.objects import ObjectMeta, Service, ServicePort

SVC = Service(metadata=ObjectMeta("web", labels={"app": "web"}), selector={"app": "web"},
              ports=(ServicePort(80, "http", name="http"), ServicePort(53, 53, name="dns", protocol="UDP")))


def slices(service: Service, *endpoints: Endpoint) -> list[dict]:
    return endpoint_slices(service, uid="u-1", created="2026-01-01T00:00:00Z", endpoints=endpoints, node="n1")


def test_one_slice_per_set_of_target_ports_with_ready_conditions():
    a = Endpoint("web-a", "10.0.0.1", {"http": 8080, "dns": 53})
    b = Endpoint("web-b", "10.0.0.2", {"http": 8080, "dns": 53}, ready=False, node="n2", hostname="b")
    c = Endpoint("web-c", "10.0.0.3", {"http": 9090, "dns": 53})
    first, second = slices(SVC, a, b, c)
    assert [e["addresses"] for e in first["endpoints"]] == [["10.0.0.1"], ["10.0.0.2"]]
    assert first["endpoints"][1]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert first["endpoints"][1]["nodeName"] == "n2" and first["endpoints"][1]["hostname"] == "b"
    assert first["endpoints"][0]["nodeName"] == "n1"
    assert first["ports"] == [{"name": "dns", "port": 53, "protocol": "UDP"},
                              {"name": "http", "port": 8080, "protocol": "TCP"}]
    assert [e["addresses"] for e in second["endpoints"]] == [["10.0.0.3"]]
    assert first["metadata"]["name"] != second["metadata"]["name"]
    assert first["metadata"]["labels"] == {"app": "web", SERVICE_NAME_LABEL: "web",
                                           "endpointslice.kubernetes.io/managed-by": "meshd"}


def test_a_service_without_endpoints_has_one_empty_slice_and_one_without_selector_none():
    (empty,) = slices(SVC)
    assert empty["endpoints"] == [] and empty["ports"] == []
    assert slices(Service(metadata=ObjectMeta("ext"), selector={}, ports=())) == []


def test_names_and_uids_are_stable_per_service():
    assert slice_name("web", "u-1", 0) == slice_name("web", "u-1", 0) != slice_name("web", "u-2", 0)
    assert slices(SVC)[0]["metadata"]["uid"] == slices(SVC)[0]["metadata"]["uid"]
    assert len(slice_name("x" * 63, "u", 0)) == 63

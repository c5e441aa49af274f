"""nodePort allocation, port claims and external listeners: pure decisions, table-tested."""

from __future__ import annotations

import pytest

from meshd.external.listeners import external_ports, load_balancer_status, parse_external
from meshd.external.nodeports import NODE_PORTS, PortClaimError, assign_node_ports, claims
from meshd.manifests.loader import load_documents
from meshd.model.endpoints import ExternalPort, ServiceInfo, ServiceKey
from meshd.model.objects import Service


def service(kind: str = "NodePort", *ports: str, name: str = "web", extra: str = "") -> Service:
    lines = "\n".join(f"  - {p}" for p in ports or ("{port: 80}",))
    text = f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  type: {kind}\n{extra}  ports:\n{lines}\n"
    (obj,) = load_documents(text).objects
    assert isinstance(obj, Service)
    return obj


def test_a_given_node_port_is_kept_and_persisted_in_the_manifest() -> None:
    svc = assign_node_ports(service("NodePort", "{port: 80, nodePort: 30080}"), previous=None, taken={}, owner="d/w")
    assert svc.ports[0].node_port == 30080
    assert svc.raw["spec"]["ports"][0]["nodePort"] == 30080


def test_an_allocated_node_port_is_in_range_written_into_the_manifest_and_stable() -> None:
    first = assign_node_ports(service(), previous=None, taken={}, owner="default/web")
    number = first.ports[0].node_port
    assert number is not None and NODE_PORTS[0] <= number <= NODE_PORTS[1]
    assert first.raw["spec"]["ports"][0]["nodePort"] == number
    # re-applied without a nodePort: the one it had stays, even when the hash would now pick another
    again = assign_node_ports(service(), previous=first, taken={(number + 1, "TCP"): "default/x"}, owner="other")
    assert again.ports[0].node_port == number


def test_allocation_skips_taken_numbers_of_any_protocol() -> None:
    first = assign_node_ports(service(), previous=None, taken={}, owner="default/web")
    number = first.ports[0].node_port
    assert number is not None
    second = assign_node_ports(service(), previous=None, taken={(number, "UDP"): "default/dns"}, owner="default/web")
    assert second.ports[0].node_port not in (None, number)


@pytest.mark.parametrize(("svc", "taken", "path", "words"), [
    (service("NodePort", "{port: 80, nodePort: 30080}"), {(30080, "TCP"): "default/other"},
     ("spec", "ports", 0, "nodePort"), "Invalid value: 30080: provided port is already allocated"),
    (service("NodePort", "{name: a, port: 80, nodePort: 30080}", "{name: b, port: 81, nodePort: 30080}"), {},
     ("spec", "ports", 1, "nodePort"), "Duplicate value: 30080"),
    (service("LoadBalancer", "{port: 8080}"), {(8080, "TCP"): "default/other"},
     ("spec", "ports", 0, "port"), "port 8080/TCP of the external address is already used by Service default/other"),
])  # fmt: skip
def test_a_port_another_service_holds_is_refused_with_its_field(svc, taken, path, words) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PortClaimError) as caught:
        assign_node_ports(svc, previous=None, taken=taken, owner="default/web")
    assert caught.value.path == path and words in caught.value.message


def test_load_balancer_claims_its_port_and_its_node_port_unless_told_not_to_allocate() -> None:
    lb = assign_node_ports(service("LoadBalancer", "{port: 8080}"), previous=None, taken={}, owner="d/w")
    assert lb.ports[0].node_port is not None
    assert set(claims(lb)) == {(8080, "TCP"), (lb.ports[0].node_port, "TCP")}
    bare = service("LoadBalancer", "{port: 8080}", extra="  allocateLoadBalancerNodePorts: false\n")
    assert assign_node_ports(bare, previous=None, taken={}, owner="d/w").ports[0].node_port is None
    assert claims(service("ClusterIP")) == {}


def test_external_listeners_and_status() -> None:
    lb = assign_node_ports(service("LoadBalancer", "{port: 8080, nodePort: 31000}"), previous=None, taken={},
                           owner="d/w")  # fmt: skip
    assert external_ports(lb, ("127.0.0.1", "10.0.0.5")) == (
        ExternalPort("127.0.0.1", 8080, "TCP", ""), ExternalPort("127.0.0.1", 31000, "TCP", ""),
        ExternalPort("10.0.0.5", 8080, "TCP", ""), ExternalPort("10.0.0.5", 31000, "TCP", ""),
    )  # fmt: skip
    np = service("NodePort", "{port: 53, nodePort: 30053, protocol: UDP}")
    assert external_ports(np, ("127.0.0.1",)) == (ExternalPort("127.0.0.1", 30053, "UDP", ""),)
    assert external_ports(service("ClusterIP"), ("127.0.0.1",)) == ()
    assert load_balancer_status(lb, ("127.0.0.1",)) == {"ingress": [{"ip": "127.0.0.1", "ipMode": "VIP"}]}
    assert load_balancer_status(np, ("127.0.0.1",)) == {}


def test_service_info_carries_external_ports_on_the_wire() -> None:
    info = ServiceInfo(ServiceKey("default", "web"), "10.0.0.1", (), external=(ExternalPort("127.0.0.1", 30080,
                       "TCP", "http"),))  # fmt: skip
    assert ServiceInfo.from_json(info.to_json()) == info
    plain = ServiceInfo(ServiceKey("default", "web"), "10.0.0.1", ())
    assert "external" not in plain.to_json() and ServiceInfo.from_json(plain.to_json()) == plain


@pytest.mark.parametrize(("text", "expected"), [
    (None, ("127.0.0.1",)), ("0.0.0.0", ("0.0.0.0",)), ("127.0.0.1, 192.168.1.2", ("127.0.0.1", "192.168.1.2")),
    ("[::1]", ("::1",)),
])  # fmt: skip
def test_parse_external(text, expected) -> None:  # type: ignore[no-untyped-def]
    assert parse_external(text) == expected


def test_parse_external_names_a_bad_address() -> None:
    with pytest.raises(ValueError, match="'nope' is not an IP address"):
        parse_external("127.0.0.1,nope")


@pytest.mark.parametrize("field", ["externalIPs", "loadBalancerSourceRanges", "loadBalancerIP"])
def test_unsupported_external_fields_are_refused_by_name(field: str) -> None:
    from meshd.manifests.errors import ManifestError

    with pytest.raises(ManifestError, match=f"spec.{field}: not supported"):
        service("LoadBalancer", extra=f"  {field}: {'[1.2.3.4]' if field != 'loadBalancerIP' else '1.2.3.4'}\n")


def test_a_node_port_on_a_cluster_ip_service_is_refused() -> None:
    from meshd.manifests.errors import ManifestError

    with pytest.raises(ManifestError, match=r"spec.ports\[0\].nodePort: may not be used when `type` is 'ClusterIP'"):
        service("ClusterIP", "{port: 80, nodePort: 30080}")


def test_port_claims_follow_each_service_as_it_is_replaced() -> None:
    from meshd.external.nodeports import PortClaims

    np = service("NodePort", "{port: 80, nodePort: 30080}")
    index = PortClaims([("default/a", np), ("default/b", service("ClusterIP"))])
    assert index.taken_for("default/b") == {(30080, "TCP"): "default/a"}
    assert index.taken_for("default/a") == {}
    index.replace("default/a", service("ClusterIP"))  # became a ClusterIP Service: its nodePort is free again
    assert index.taken_for("default/b") == {}


@pytest.mark.parametrize(("addresses", "host", "expected"), [
    (("0.0.0.0",), ["127.0.0.1", "192.168.1.9", "10.213.0.1"], ("127.0.0.1", "192.168.1.9")),
    (("127.0.0.1", "0.0.0.0"), ["127.0.0.1", "192.168.1.9"], ("127.0.0.1", "192.168.1.9")),
    (("0.0.0.0",), [], ("0.0.0.0",)),  # nothing known: the wildcard stays
    (("192.168.1.9",), ["127.0.0.1"], ("192.168.1.9",)),
])  # fmt: skip
def test_a_wildcard_external_address_means_every_host_address_but_the_mesh_bridge(addresses, host, expected) -> None:  # type: ignore[no-untyped-def]
    from meshd.external.listeners import expand_wildcards

    assert expand_wildcards(addresses, host, exclude=("10.213.0.1/16",)) == expected  # the gateway/16, as the agent

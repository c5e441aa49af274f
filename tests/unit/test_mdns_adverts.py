"""Which DNS-SD adverts a node publishes for which Services: table tests of the pure decision."""

from __future__ import annotations

import pytest
from zeroconf import ServiceInfo
from zeroconf._utils.name import service_type_name

from meshd.mdns import parse_mdns_option
from meshd.mdns.adverts import (
    Advert,
    AdvertChanges,
    desired_adverts,
    host_label,
    is_service_name,
    plan_changes,
    service_type,
)
from meshd.model.endpoints import Endpoint, PortInfo, ServiceKey
from meshd.model.endpoints import ServiceInfo as MeshService

WEB = ServiceKey("default", "web")


def svc(
    name: str = "web",
    *,
    namespace: str = "default",
    address: str | None = "127.214.0.1",
    ports: tuple[PortInfo, ...] = (PortInfo("http", 80, 8080),),
) -> MeshService:
    return MeshService(ServiceKey(namespace, name), address, ports)


def ep(
    name: str, address: str = "127.213.0.2", ports: dict[str, int] | None = None, ready: bool = True,
    node: str = "",
) -> Endpoint:
    return Endpoint(name=name, address=address, ports=ports or {"http": 8080}, ready=ready, node=node)


@pytest.mark.parametrize(
    ("name", "protocol", "expected"),
    [
        ("http", "TCP", "_http._tcp.local."),
        ("https", "TCP", "_https._tcp.local."),
        ("grpc", "TCP", "_grpc._tcp.local."),
        ("", "TCP", "_http._tcp.local."),
        ("http-metrics", "TCP", "_http._tcp.local."),
        ("https-admin", "TCP", "_https._tcp.local."),
        ("grpc-web", "TCP", "_grpc._tcp.local."),
        ("HTTP", "TCP", "_http._tcp.local."),
        ("postgres", "TCP", "_postgres._tcp.local."),
        ("redis", "TCP", "_redis._tcp.local."),
        ("httpx", "TCP", "_httpx._tcp.local."),  # only "http" or "http-..." is HTTP
        ("a-very-long-port-name", "TCP", "_meshd._tcp.local."),  # over 15 characters
        ("1234", "TCP", "_meshd._tcp.local."),  # no letter
        ("dns", "UDP", "_dns._udp.local."),
        ("", "UDP", "_meshd._udp.local."),
        ("http", "UDP", "_http._udp.local."),
        ("http", "SCTP", None),
    ],
)
def test_service_type_from_port_name(name: str, protocol: str, expected: str | None) -> None:
    assert service_type(PortInfo(name, 80, 80, protocol)) == expected


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("http", True),
        ("x", True),
        ("a-b", True),
        ("a--b", False),
        ("-ab", False),
        ("ab-", False),
        ("1-2", False),
        ("abcdefghijklmno", True),
        ("abcdefghijklmnop", False),
        ("a_b", False),
        ("", False),
    ],
)
def test_is_service_name_follows_rfc6335(name: str, valid: bool) -> None:
    assert is_service_name(name) is valid


def test_a_service_with_a_ready_endpoint_is_advertised_at_its_address() -> None:
    adverts = desired_adverts([svc()], {WEB: [ep("web-1")]}, node_name="node1")
    assert adverts == {
        "web@default._http._tcp.local.": Advert(
            instance="web@default",
            type_="_http._tcp.local.",
            port=80,
            server="node1-127-214-0-1.local.",
            addresses=("127.214.0.1",),
            properties=(
                ("namespace", "default"),
                ("service", "web"),
                ("port", "http"),
                ("node", "node1"),
                ("nodes", "node1"),
                ("meshd", "1"),
            ),
        )
    }


@pytest.mark.parametrize(
    ("endpoints", "advertised"),
    [
        ([], False),
        ([ep("web-1", ready=False)], False),
        ([ep("web-1", ready=False), ep("web-2")], True),
        ([ep("web-1"), ep("web-2")], True),
    ],
)
def test_advertised_only_with_a_ready_endpoint(endpoints: list[Endpoint], advertised: bool) -> None:
    # the caller passes ready endpoints (Registry.ready_endpoints); a stray non-ready one must not count either
    ready = [e for e in endpoints if e.ready]
    assert bool(desired_adverts([svc()], {WEB: ready}, node_name="n")) is advertised


def test_one_advert_per_service_not_per_endpoint() -> None:
    adverts = desired_adverts([svc()], {WEB: [ep("web-1"), ep("web-2", "127.213.0.3")]}, node_name="n")
    assert list(adverts) == ["web@default._http._tcp.local."]


def test_one_advert_per_port_and_port_name_added_when_a_type_repeats() -> None:
    ports = (PortInfo("http", 80, 8080), PortInfo("http-metrics", 9090, 9090), PortInfo("grpc", 50051, 50051))
    endpoint = ep("web-1", ports={"http": 8080, "http-metrics": 9090, "grpc": 50051})
    adverts = desired_adverts([svc(ports=ports)], {WEB: [endpoint]}, node_name="n")
    assert {name: a.port for name, a in adverts.items()} == {
        "web@default:http._http._tcp.local.": 80,
        "web@default:http-metrics._http._tcp.local.": 9090,
        "web@default._grpc._tcp.local.": 50051,
    }
    assert dict(adverts["web@default:http-metrics._http._tcp.local."].properties)["port"] == "http-metrics"


def test_headless_service_is_advertised_per_ready_endpoint_at_its_own_address_and_port() -> None:
    key = ServiceKey("data", "db")
    service = svc("db", namespace="data", address=None, ports=(PortInfo("postgres", 5432, 5432),))
    endpoints = [
        ep("db-0", "127.213.0.5", {"postgres": 15432}),
        ep("db-1", "127.213.0.6", {"postgres": 15433}),
    ]
    adverts = desired_adverts([service], {key: endpoints}, node_name="n", host_address="192.168.1.9")
    assert {name: (a.addresses, a.port, a.server) for name, a in adverts.items()} == {
        "db@data:db-0._postgres._tcp.local.": (("127.213.0.5",), 15432, "n-127-213-0-5.local."),
        "db@data:db-1._postgres._tcp.local.": (("127.213.0.6",), 15433, "n-127-213-0-6.local."),
    }
    assert dict(adverts["db@data:db-1._postgres._tcp.local."].properties)["endpoint"] == "db-1"


def test_host_address_is_an_extra_address_of_vip_adverts() -> None:
    adverts = desired_adverts([svc()], {WEB: [ep("web-1")]}, node_name="n", host_address="192.168.1.9")
    assert adverts["web@default._http._tcp.local."].addresses == ("127.214.0.1", "192.168.1.9")


def test_two_services_never_share_a_host_name_with_different_addresses() -> None:
    services = [svc("web"), svc("api", address="127.214.0.2")]
    ready = {WEB: [ep("web-1")], ServiceKey("default", "api"): [ep("api-1", ports={"http": 8080})]}
    adverts = desired_adverts(services, ready, node_name="n")
    servers = {a.server: a.addresses for a in adverts.values()}
    assert len(servers) == 2


def test_names_stay_within_one_dns_label() -> None:
    long = "x" * 63
    adverts = desired_adverts(
        [svc(long, namespace=long)], {ServiceKey(long, long): [ep("p")]}, node_name="node-" + "y" * 70
    )
    (advert,) = adverts.values()
    assert len(advert.instance.encode()) <= 63 and advert.instance.startswith("xxx")
    assert len(advert.server.removesuffix(".local.")) <= 63
    other = desired_adverts(
        [svc(long, namespace=long[:-1] + "z")], {ServiceKey(long[:-1] + "z", long): [ep("p")]}, node_name="n"
    )
    assert next(iter(other.values())).instance != advert.instance


@pytest.mark.parametrize(
    ("node", "address", "label"),
    [
        ("node1", "10.213.128.5", "node1-10-213-128-5"),
        ("Node_1.lan", "fd00::1", "node-1-lan-fd00-1"),
        ("", "127.0.0.1", "127-0-0-1"),
    ],
)
def test_host_label(node: str, address: str, label: str) -> None:
    assert host_label(node, address) == label


def test_every_advert_is_a_valid_zeroconf_service_info() -> None:
    ports = (PortInfo("http", 80, 8080), PortInfo("weird_name", 81, 81), PortInfo("", 82, 82, "UDP"))
    adverts = desired_adverts(
        [svc(ports=ports)], {WEB: [ep("w", ports={"http": 1, "weird_name": 2, "": 3})]}, node_name="n"
    )
    assert len(adverts) == 3
    for advert in adverts.values():
        service_type_name(advert.name, strict=True)
        info = ServiceInfo(
            advert.type_,
            advert.name,
            port=advert.port,
            properties=dict(advert.properties),
            server=advert.server,
            parsed_addresses=list(advert.addresses),
        )
        assert info.decoded_properties["service"] == "web"


def test_plan_changes_registers_updates_and_unregisters() -> None:
    def advert(instance: str, port: int = 80) -> Advert:
        return Advert(instance, "_http._tcp.local.", port, "h.local.", ("127.0.0.1",), ())

    kept, moved, gone, new = advert("kept"), advert("moved"), advert("gone"), advert("new")
    published = {a.name: a for a in (kept, moved, gone)}
    desired = {a.name: a for a in (kept, advert("moved", 81), new)}
    assert plan_changes(desired, published) == AdvertChanges(
        register=(new,), update=(advert("moved", 81),), unregister=(gone.name,)
    )
    assert not plan_changes(published, published)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("off", None),
        ("all", "all"),
        ("", "all"),
        ("127.0.0.1", ["127.0.0.1"]),
        ("127.0.0.1, 192.168.1.2", ["127.0.0.1", "192.168.1.2"]),
    ],
)
def test_parse_mdns_option(text: str, expected: object) -> None:
    assert parse_mdns_option(text) == expected


def test_parse_mdns_option_rejects_interface_names() -> None:
    with pytest.raises(ValueError, match="eth0"):
        parse_mdns_option("eth0")


@pytest.mark.parametrize(
    ("endpoints", "nodes"),
    [
        ([ep("a", node="n2"), ep("b", node="n1"), ep("c", node="n2")], "n1,n2"),  # each node once, sorted
        ([ep("a")], "leader"),  # an endpoint of unknown origin: the advertising node's
    ],
)
def test_the_txt_record_names_the_nodes_that_serve_the_service(endpoints: list[Endpoint], nodes: str) -> None:
    (advert,) = desired_adverts([svc()], {WEB: endpoints}, node_name="leader").values()
    assert dict(advert.properties)["nodes"] == nodes and dict(advert.properties)["node"] == "leader"


def test_a_headless_endpoints_advert_names_its_own_node() -> None:
    adverts = desired_adverts([svc(address=None)], {WEB: [ep("a", node="n2"), ep("b", node="n3")]}, node_name="n1")
    assert sorted(dict(a.properties)["nodes"] for a in adverts.values()) == ["n2", "n3"]


def test_a_long_node_list_fits_one_txt_string_and_counts_the_rest() -> None:
    from meshd.mdns.adverts import node_list

    assert node_list({"b", "a"}) == "a,b"
    many = node_list({f"node-{i:03}-" + "x" * 20 for i in range(40)})
    assert len(("nodes=" + many).encode()) <= 255
    shown, rest = many.split(",")[:-1], many.split(",")[-1]
    assert rest.startswith("+") and len(shown) + int(rest[1:]) == 40

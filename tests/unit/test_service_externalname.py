"""Services of type ExternalName: what the manifest may say, what a change of type keeps (pure, table-tested),
what DNS answers (a CNAME, chased inside the zone), and what nothing else does for them (no address, endpoints,
listener, mDNS advert or hosts line); one controller over an in-memory store turns a Service ExternalName and
back as `kubectl apply` sends it (the live clusterIP carried along)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshd.api.columns import service_row
from meshd.controller.loop import Controller, NodeCapacity
from meshd.controller.servicetype import TypeFieldError, settle_type_change
from meshd.dns.zone import CNAME, NOERROR, NXDOMAIN, SOA, SRV, A, Snapshot, lookup
from meshd.driver.process import ProcessDriver
from meshd.external.listeners import external_ports
from meshd.hostnames.entries import host_entries
from meshd.manifests.errors import ManifestError
from meshd.manifests.loader import load_documents
from meshd.mdns.adverts import desired_adverts
from meshd.model.endpoints import Endpoint, PortInfo, ServiceInfo, ServiceKey
from meshd.model.objects import Service
from meshd.registry import Registry
from meshd.registry.endpoints import PodRecord, ServiceRecord, endpoint_for
from meshd.store import ObjectStore

POOL = "127.66.0.0/16"


def service(spec: dict[str, Any], name: str = "ext") -> Service:
    doc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}
    (obj,) = load_documents(yaml.safe_dump(doc)).objects
    assert isinstance(obj, Service)
    return obj


EXT = {"type": "ExternalName", "externalName": "db.example.com"}
PORT = [{"port": 80}]


# --- the manifest --------------------------------------------------------------------------------------------


def test_an_external_name_service_needs_no_ports_and_loses_a_trailing_dot() -> None:
    ext = service({"type": "ExternalName", "externalName": "db.example.com."})
    assert (ext.type, ext.external_name, ext.ports, ext.cluster_ip, ext.has_address) == (
        "ExternalName", "db.example.com", (), None, False)
    with_ports = service({**EXT, "ports": PORT, "selector": {"app": "db"}})  # allowed, unused
    assert [p.port for p in with_ports.ports] == [80] and not with_ports.has_address


@pytest.mark.parametrize(("spec", "field", "words"), [
    ({"type": "ExternalName"}, "spec.externalName", "required"),
    ({"type": "ExternalName", "externalName": "."}, "spec.externalName", "required"),
    ({"type": "ExternalName", "externalName": "-db.example.com"}, "spec.externalName", "invalid name"),
    ({"type": "ExternalName", "externalName": "DB.example.com"}, "spec.externalName", "lower case"),
    ({"type": "ExternalName", "externalName": "x" * 254}, "spec.externalName", "253"),
    ({"type": "ExternalName", "externalName": "db", "clusterIP": "10.0.0.1x"}, "spec.clusterIP", "IPv4"),
])
def test_a_bad_external_name_service_is_refused_naming_the_field(spec: dict[str, Any], field: str,
                                                                  words: str) -> None:
    with pytest.raises(ManifestError) as info:
        service(spec)
    assert info.value.field_path == field and words in str(info.value)


# --- a change of type: what it keeps ----------------------------------------------------------------------------

CLUSTER = service({"ports": PORT, "clusterIP": "127.66.0.7"})
HEADLESS = service({"ports": PORT, "clusterIP": "None"})
NODEPORT = service({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}], "clusterIP": "127.66.0.7"})
EXTERNAL = service(EXT)


@pytest.mark.parametrize(("spec", "previous", "cluster_ip", "external_name", "node_ports"), [
    (EXT, None, None, "db.example.com", [None]),  # created as ExternalName: nothing to drop
    ({**EXT, "clusterIP": "127.66.0.7", "ports": PORT}, CLUSTER, None, "db.example.com", [None]),  # given: dropped
    ({**EXT, "clusterIP": "None", "ports": PORT}, HEADLESS, None, "db.example.com", [None]),
    ({**EXT, "clusterIP": "127.66.0.7", "ports": [{"port": 80, "nodePort": 30080}]}, NODEPORT, None,
     "db.example.com", [None]),
    ({"ports": PORT, "externalName": "db.example.com"}, EXTERNAL, None, None, [None]),  # turned back
    ({"ports": PORT, "clusterIP": "127.66.0.7"}, CLUSTER, "127.66.0.7", None, [None]),  # no change of type
])
def test_what_a_service_keeps_when_its_type_changes(spec: dict[str, Any], previous: Service | None,
                                                    cluster_ip: str | None, external_name: str | None,
                                                    node_ports: list[int | None]) -> None:
    settled = settle_type_change(service(spec), previous)
    assert (settled.cluster_ip, settled.external_name) == (cluster_ip, external_name)
    assert [p.node_port for p in settled.ports or service({"ports": PORT}).ports] == node_ports
    stored = settled.raw["spec"]
    assert ("clusterIP" in stored) == (cluster_ip is not None)
    assert ("externalName" in stored) == (external_name is not None)
    assert all("nodePort" not in p for p in stored.get("ports") or [])


@pytest.mark.parametrize(("spec", "previous", "field", "words"), [
    ({**EXT, "clusterIP": "127.66.0.7"}, None, ("spec", "clusterIP"), "may not be set for ExternalName"),
    ({**EXT, "clusterIP": "127.66.0.8"}, CLUSTER, ("spec", "clusterIP"), "may not be set for ExternalName"),
    ({**EXT, "clusterIP": "None"}, None, ("spec", "clusterIP"), "may not be set for ExternalName"),
    ({**EXT, "ports": [{"port": 80, "nodePort": 30081}]}, NODEPORT, ("spec", "ports", 0, "nodePort"),
     "may not be used when `type` is 'ExternalName'"),
    ({"ports": PORT, "externalName": "db.example.com"}, None, ("spec", "externalName"), "only be set"),
    ({"ports": PORT, "externalName": "other.example.com"}, EXTERNAL, ("spec", "externalName"), "only be set"),
])
def test_a_field_the_new_type_cannot_have_is_refused_when_it_is_new(spec: dict[str, Any], previous: Service | None,
                                                                    field: tuple[Any, ...], words: str) -> None:
    with pytest.raises(TypeFieldError) as info:
        settle_type_change(service(spec), previous)
    assert info.value.path == field and words in info.value.message


# --- DNS ----------------------------------------------------------------------------------------------------

WEB = ServiceKey("default", "web")
SNAPSHOT = Snapshot(
    services=(
        ServiceInfo(WEB, "10.213.128.5", (PortInfo("http", 80, 80),)),
        ServiceInfo(ServiceKey("default", "db"), None, (PortInfo("http", 80, 80),), external_name="db.example.com"),
        ServiceInfo(ServiceKey("default", "alias"), None, (), external_name="web.default.svc.cluster.local"),
        ServiceInfo(ServiceKey("prod", "chain"), None, (), external_name="alias.default.svc.cluster.local"),
        ServiceInfo(ServiceKey("default", "gone"), None, (), external_name="nothing.default.svc.cluster.local"),
        ServiceInfo(ServiceKey("default", "loop1"), None, (), external_name="loop2.default.svc.cluster.local"),
        ServiceInfo(ServiceKey("default", "loop2"), None, (), external_name="loop1.default.svc.cluster.local"),
    ),
    endpoints={WEB: (Endpoint("web-1", "10.213.0.2", {"http": 8080}),)},
    serial=7,
)
SOA_RR = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 7 7200 1800 86400 5"
DB = "db.default.svc.cluster.local."
ALIAS = "alias.default.svc.cluster.local."
CHAIN = "chain.prod.svc.cluster.local."
W = "web.default.svc.cluster.local."
GONE = "gone.default.svc.cluster.local."


@pytest.mark.parametrize(("qname", "qtype", "rcode", "answer", "authority"), [
    # out of the zone: the CNAME alone, for every type (the client's resolver follows it)
    (DB, A, NOERROR, [f"{DB} 5 IN CNAME db.example.com."], []),
    (DB, SRV, NOERROR, [f"{DB} 5 IN CNAME db.example.com."], []),
    (DB, CNAME, NOERROR, [f"{DB} 5 IN CNAME db.example.com."], []),
    ("DB.Default.svc.cluster.local", A, NOERROR, [f"{DB} 5 IN CNAME db.example.com."], []),
    # no SRV names under it, whatever its ports
    (f"_http._tcp.{DB}", SRV, NXDOMAIN, [], [SOA_RR]),
    # another Service: its A record in the same answer; a chain of aliases: every CNAME, then the A
    (ALIAS, A, NOERROR, [f"{ALIAS} 5 IN CNAME {W}", f"{W} 5 IN A 10.213.128.5"], []),
    (CHAIN, A, NOERROR, [f"{CHAIN} 5 IN CNAME {ALIAS}", f"{ALIAS} 5 IN CNAME {W}", f"{W} 5 IN A 10.213.128.5"], []),
    (ALIAS, SRV, NOERROR, [f"{ALIAS} 5 IN CNAME {W}", f"{W} 5 IN SRV 0 100 8080 10-213-0-2.{W}"], []),
    (ALIAS, SOA, NOERROR, [f"{ALIAS} 5 IN CNAME {W}"], [SOA_RR]),  # the target has no such record: NODATA
    (ALIAS, CNAME, NOERROR, [f"{ALIAS} 5 IN CNAME {W}"], []),
    # a target in the zone that does not exist: the CNAME, and the last name's NXDOMAIN (RFC 6604)
    (GONE, A, NXDOMAIN, [f"{GONE} 5 IN CNAME nothing.default.svc.cluster.local."], [SOA_RR]),
    # a loop ends where it would repeat itself
    ("loop1.default.svc.cluster.local.", A, NOERROR, [
        "loop1.default.svc.cluster.local. 5 IN CNAME loop2.default.svc.cluster.local.",
        "loop2.default.svc.cluster.local. 5 IN CNAME loop1.default.svc.cluster.local."], []),
])
def test_dns_answers_a_cname_and_follows_it_inside_the_zone(qname: str, qtype: int, rcode: int, answer: list[str],
                                                             authority: list[str]) -> None:
    found = lookup(SNAPSHOT, qname, qtype)
    assert found.rcode == rcode
    assert [str(r) for r in found.answer] == answer
    assert [str(r) for r in found.authority] == authority


def test_the_cname_chase_carries_the_srv_targets_addresses() -> None:
    found = lookup(SNAPSHOT, ALIAS, SRV)
    assert [str(r) for r in found.additional] == [f"10-213-0-2.{W} 5 IN A 10.213.0.2"]


def test_an_external_name_service_has_no_reverse_record() -> None:
    assert lookup(SNAPSHOT, "5.128.213.10.in-addr.arpa.", 12).answer[0].data == W


# --- nothing else serves it -------------------------------------------------------------------------------------

INFO = ServiceInfo(ServiceKey("default", "db"), None, (PortInfo("", 80, 80),), external_name="db.example.com")
POD = PodRecord("default", "db-1", {"app": "db"}, "10.213.0.9", ready=True)


def test_an_external_name_service_is_neither_headless_nor_an_address() -> None:
    assert not INFO.headless and INFO.address is None
    assert ServiceInfo.from_json(INFO.to_json()) == INFO  # across nodes (the watch API's wire form)
    assert "externalName" not in ServiceInfo(WEB, "10.0.0.1", ()).to_json()


def test_an_external_name_service_has_no_endpoints_whatever_its_selector() -> None:
    assert endpoint_for(ServiceRecord(INFO, {"app": "db"}), POD) is None
    plain = ServiceInfo(INFO.key, "10.213.128.9", INFO.ports)
    assert endpoint_for(ServiceRecord(plain, {"app": "db"}), POD) is not None


def test_no_mdns_advert_hosts_line_or_external_port_for_an_external_name_service() -> None:
    ready = {INFO.key: [Endpoint("db-1", "10.213.0.9", {"": 80})]}
    assert desired_adverts([INFO], ready, node_name="n1") == {}
    assert host_entries([INFO], ready) == ()  # its target is outside the zone
    ext = service({**EXT, "ports": PORT})
    assert external_ports(ext, ["0.0.0.0"]) == ()


def test_kubectl_get_shows_the_external_name_and_no_cluster_ip() -> None:
    from datetime import UTC, datetime

    obj = {"metadata": {"name": "db"}, "spec": {"type": "ExternalName", "externalName": "db.example.com",
                                                "ports": [{"port": 80, "protocol": "TCP"}]}}
    assert service_row(obj, datetime.now(UTC), False)[:5] == ["db", "ExternalName", "<none>", "db.example.com",
                                                               "80/TCP"]


# --- a controller over a store: ClusterIP -> ExternalName -> ClusterIP --------------------------------------------


def live(store: ObjectStore) -> dict[str, Any]:
    stored = store.get("Service", "default", "ext")
    assert stored is not None
    return stored


async def test_a_service_turned_external_name_frees_its_address_and_turned_back_gets_one(tmp_path: Path) -> None:
    store = ObjectStore()
    changes: list[tuple[str, bool]] = []
    controller = Controller(driver=ProcessDriver(agent_id="extname", state_dir=tmp_path / "process"),
                            registry=Registry(node="test"), state_dir=tmp_path / "state", agent_id="extname",
                            service_pool=POOL, capacity=NodeCapacity(cpu_millicores=1000, memory_bytes=1 << 30),
                            on_service_address=lambda address, up: changes.append((address, up)))
    controller.use_store(store)
    key = ServiceKey("default", "ext")
    await controller.apply("apiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec:\n  ports: [{port: 80}]\n")
    address = live(store)["spec"]["clusterIP"]
    assert ipaddress.IPv4Address(address) in ipaddress.IPv4Network(POOL)
    assert store.get("IPAddress", "", address) is not None and changes == [(address, True)]

    # as a client-side apply patches it: type and externalName change, the live clusterIP stays in the object
    turned = {**live(store), "spec": {**live(store)["spec"], **EXT}}
    await controller.apply(yaml.safe_dump(turned))
    assert "clusterIP" not in live(store)["spec"] and live(store)["spec"]["externalName"] == "db.example.com"
    assert store.get("IPAddress", "", address) is None  # freed
    assert changes[-1] == (address, False)  # and taken off the bridge
    info = controller.registry.service(key)
    assert info is not None and (info.address, info.external_name) == (None, "db.example.com")

    back = {**live(store), "spec": {**live(store)["spec"], "type": "ClusterIP"}}  # externalName carried along
    await controller.apply(yaml.safe_dump(back))
    again = live(store)["spec"]
    assert "externalName" not in again and again["clusterIP"]
    assert store.get("IPAddress", "", again["clusterIP"]) is not None
    info = controller.registry.service(key)
    assert info is not None and (info.address, info.external_name) == (again["clusterIP"], None)

    with pytest.raises(ManifestError, match="may not be set for ExternalName"):  # an address asked for anew
        await controller.apply(yaml.safe_dump({**live(store), "spec": {**EXT, "clusterIP": "127.66.3.3"}}))

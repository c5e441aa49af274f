"""Table-driven tests of the pure DNS lookup, CoreDNS-style: Case(qname, qtype, rcode, answer, ns, extra)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshd.dns.responder import Responder
from meshd.dns.zone import (
    AAAA,
    ANY,
    NOERROR,
    NS,
    NXDOMAIN,
    PTR,
    REFUSED,
    SOA,
    SRV,
    TXT,
    A,
    Snapshot,
    Zone,
    lookup,
)
from meshd.model.endpoints import Endpoint, PortInfo, ServiceInfo, ServiceKey
from meshd.registry.endpoints import PodRecord
from meshd.registry.registry import Registry

WEB = ServiceKey("default", "web")
DB = ServiceKey("prod", "db")
EMPTY = ServiceKey("default", "empty")
IDLE = ServiceKey("prod", "idle")

SNAPSHOT = Snapshot(
    services=(
        ServiceInfo(WEB, "10.213.128.5", (PortInfo("http", 80, "http"), PortInfo("metrics", 9100, 9100))),
        ServiceInfo(DB, None, (PortInfo("pg", 5432, 5432),)),
        ServiceInfo(EMPTY, "10.213.128.9", (PortInfo("", 80, 8080),)),
        ServiceInfo(IDLE, None, (PortInfo("pg", 5432, 5432),)),
    ),
    endpoints={
        WEB: (
            Endpoint("web-1", "10.213.0.2", {"http": 8080, "metrics": 9100}),
            Endpoint("web-2", "10.213.0.3", {"http": 8080, "metrics": 9100}),
            Endpoint("web-3", "10.213.0.4", {"http": 8080, "metrics": 9100}, ready=False),
        ),
        DB: (
            Endpoint("db-0", "10.213.0.7", {"pg": 5432}, hostname="db-0"),
            Endpoint("db-1", "10.213.0.8", {"pg": 5432}, ready=False, hostname="db-1"),
        ),
        EMPTY: (),
        IDLE: (Endpoint("idle-0", "10.213.0.9", {"pg": 5432}, ready=False),),
    },
    serial=42,
)

SOA_RR = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 42 7200 1800 86400 5"
W = "web.default.svc.cluster.local."
D = "db.prod.svc.cluster.local."


@dataclass
class Case:
    qname: str
    qtype: int
    rcode: int
    answer: tuple[str, ...] = ()
    ns: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()


CASES = [
    # Service A: its address (never the endpoints) for a ClusterIP Service
    Case(W, A, NOERROR, (f"{W} 5 IN A 10.213.128.5",)),
    Case("WEB.Default.SVC.cluster.LOCAL", A, NOERROR, (f"{W} 5 IN A 10.213.128.5",)),
    # headless: one A per ready endpoint, the non-ready one never
    Case(D, A, NOERROR, (f"{D} 5 IN A 10.213.0.7",)),
    # a Service without endpoints still has its address
    Case(
        "empty.default.svc.cluster.local.",
        A,
        NOERROR,
        ("empty.default.svc.cluster.local. 5 IN A 10.213.128.9",),
    ),
    Case("empty.default.svc.cluster.local.", SRV, NOERROR, ns=(SOA_RR,)),
    # a named port with no ready endpoint: the name exists, no records (NODATA)
    Case("_pg._tcp.idle.prod.svc.cluster.local.", SRV, NOERROR, ns=(SOA_RR,)),
    Case("idle.prod.svc.cluster.local.", A, NOERROR, ns=(SOA_RR,)),
    # named-port SRV: ready endpoints, their own port, targets resolvable in additional
    Case(
        f"_http._tcp.{W}",
        SRV,
        NOERROR,
        (
            f"_http._tcp.{W} 5 IN SRV 0 50 8080 10-213-0-2.{W}",
            f"_http._tcp.{W} 5 IN SRV 0 50 8080 10-213-0-3.{W}",
        ),
        extra=(f"10-213-0-2.{W} 5 IN A 10.213.0.2", f"10-213-0-3.{W} 5 IN A 10.213.0.3"),
    ),
    Case(
        f"_pg._tcp.{D}",
        SRV,
        NOERROR,
        (f"_pg._tcp.{D} 5 IN SRV 0 100 5432 db-0.{D}",),
        extra=(f"db-0.{D} 5 IN A 10.213.0.7",),
    ),
    # plain Service SRV: every port of every ready endpoint
    Case(
        W,
        SRV,
        NOERROR,
        (
            f"{W} 5 IN SRV 0 25 8080 10-213-0-2.{W}",
            f"{W} 5 IN SRV 0 25 8080 10-213-0-3.{W}",
            f"{W} 5 IN SRV 0 25 9100 10-213-0-2.{W}",
            f"{W} 5 IN SRV 0 25 9100 10-213-0-3.{W}",
        ),
        extra=(f"10-213-0-2.{W} 5 IN A 10.213.0.2", f"10-213-0-3.{W} 5 IN A 10.213.0.3"),
    ),
    # the SRV target answers a direct query too; a non-ready endpoint's name does not exist
    Case(f"10-213-0-2.{W}", A, NOERROR, (f"10-213-0-2.{W} 5 IN A 10.213.0.2",)),
    Case(f"10-213-0-4.{W}", A, NXDOMAIN, ns=(SOA_RR,)),
    Case(f"db-0.{D}", A, NOERROR, (f"db-0.{D} 5 IN A 10.213.0.7",)),
    Case(f"db-1.{D}", A, NXDOMAIN, ns=(SOA_RR,)),
    # wrong protocol or unknown port name
    Case(f"_http._udp.{W}", SRV, NXDOMAIN, ns=(SOA_RR,)),
    Case(f"_grpc._tcp.{W}", SRV, NXDOMAIN, ns=(SOA_RR,)),
    # pod records
    Case(
        "10-213-0-2.default.pod.cluster.local",
        A,
        NOERROR,
        ("10-213-0-2.default.pod.cluster.local. 5 IN A 10.213.0.2",),
    ),
    Case("10-213-0-2.prod.pod.cluster.local", A, NXDOMAIN, ns=(SOA_RR,)),
    # existing name, other type: NODATA with SOA; IPv4 only
    Case(W, AAAA, NOERROR, ns=(SOA_RR,)),
    Case(W, TXT, NOERROR, ns=(SOA_RR,)),
    Case(f"_http._tcp.{W}", A, NOERROR, ns=(SOA_RR,)),
    # empty non-terminals exist
    Case("default.svc.cluster.local.", A, NOERROR, ns=(SOA_RR,)),
    Case("svc.cluster.local.", A, NOERROR, ns=(SOA_RR,)),
    Case(f"_tcp.{W}", SRV, NOERROR, ns=(SOA_RR,)),
    # names that do not exist in the zone
    Case("nope.default.svc.cluster.local.", A, NXDOMAIN, ns=(SOA_RR,)),
    Case("web.nope.svc.cluster.local.", A, NXDOMAIN, ns=(SOA_RR,)),
    Case("x.y.z.cluster.local.", SRV, NXDOMAIN, ns=(SOA_RR,)),
    # apex
    Case("cluster.local.", SOA, NOERROR, (SOA_RR,)),
    Case("cluster.local.", NS, NOERROR, ("cluster.local. 5 IN NS ns.dns.cluster.local.",)),
    Case("cluster.local.", A, NOERROR, ns=(SOA_RR,)),
    Case("dns-version.cluster.local.", TXT, NOERROR, ('dns-version.cluster.local. 5 IN TXT "1.1.0"',)),
    # reverse lookups: known addresses only (a Service's, a ready endpoint's)
    Case("5.128.213.10.in-addr.arpa.", PTR, NOERROR, (f"5.128.213.10.in-addr.arpa. 5 IN PTR {W}",)),
    Case("2.0.213.10.in-addr.arpa.", PTR, NOERROR, (f"2.0.213.10.in-addr.arpa. 5 IN PTR 10-213-0-2.{W}",)),
    Case("7.0.213.10.in-addr.arpa.", PTR, NOERROR, (f"7.0.213.10.in-addr.arpa. 5 IN PTR db-0.{D}",)),
    Case("5.128.213.10.in-addr.arpa.", A, NOERROR),
    # a not-ready endpoint's address is still one of the agent's pods: its pod name
    Case("4.0.213.10.in-addr.arpa.", PTR, NOERROR,
         ("4.0.213.10.in-addr.arpa. 5 IN PTR 10-213-0-4.default.pod.cluster.local.",)),
    Case("1.0.0.127.in-addr.arpa.", PTR, REFUSED),
    # outside the zone: refused, never recursion
    Case("example.com.", A, REFUSED),
    Case("local.", SOA, REFUSED),
    Case(".", NS, REFUSED),
    Case("notcluster.local.", A, REFUSED),
    Case("web.default.svc.cluster.local.evil.com.", A, REFUSED),
]


def _strings(records) -> tuple[str, ...]:
    return tuple(str(r) for r in records)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.qname}/{c.qtype}")
def test_lookup(case: Case) -> None:
    answer = lookup(SNAPSHOT, case.qname, case.qtype)
    assert answer.rcode == case.rcode
    assert sorted(_strings(answer.answer)) == sorted(case.answer)
    assert sorted(_strings(answer.authority)) == sorted(case.ns)
    assert sorted(_strings(answer.additional)) == sorted(case.extra)


def test_any_returns_every_type_at_the_name() -> None:
    answer = lookup(SNAPSHOT, W, ANY)
    assert {r.rtype for r in answer.answer} == {A, SRV}


def test_zone_and_ttl_are_configurable() -> None:
    answer = lookup(SNAPSHOT, "web.default.svc.mesh.test", A, zone="mesh.test.", ttl=30)
    assert _strings(answer.answer) == ("web.default.svc.mesh.test. 30 IN A 10.213.128.5",)
    assert lookup(SNAPSHOT, W, A, zone="mesh.test").rcode == REFUSED


def test_nameserver_glue_when_the_address_is_known() -> None:
    answer = lookup(SNAPSHOT, "cluster.local", NS, ns_address="10.213.0.1")
    assert _strings(answer.additional) == ("ns.dns.cluster.local. 5 IN A 10.213.0.1",)


def test_empty_snapshot_has_only_the_apex() -> None:
    zone = Zone.build(Snapshot())
    assert zone.lookup("cluster.local", SOA).rcode == NOERROR
    assert zone.lookup(W, A).rcode == NXDOMAIN


def test_ipv6_endpoints_are_not_served() -> None:
    key = ServiceKey("default", "v6")
    snap = Snapshot(
        (ServiceInfo(key, None, (PortInfo("http", 80, 80),)),),
        {key: (Endpoint("p", "fd00::1", {"http": 80}),)},
    )
    assert lookup(snap, "v6.default.svc.cluster.local", A).answer == ()


# --- incremental recompilation: a zone updated Service by Service answers as one built from scratch ------------

NAMES = ("web", "api", "db")
operations = st.lists(
    st.one_of(
        st.tuples(st.just("service"), st.sampled_from(NAMES), st.booleans()),  # (name, headless)
        st.tuples(st.just("delete-service"), st.sampled_from(NAMES), st.just(False)),
        st.tuples(st.just("pod"), st.integers(0, 5), st.booleans()),  # (index, ready)
        st.tuples(st.just("delete-pod"), st.integers(0, 5), st.just(False)),
    ),
    max_size=12,
)


def questions() -> list[tuple[str, int]]:
    asked = [("cluster.local.", SOA), ("svc.cluster.local.", A), ("default.svc.cluster.local.", A)]
    for name in NAMES:
        base = f"{name}.default.svc.cluster.local."
        asked += [(base, A), (base, SRV), (f"_http._tcp.{base}", SRV)]
        asked += [(f"127-213-0-{i + 2}.{base}", A) for i in range(6)]
    asked += [(f"127-213-0-{i + 2}.default.pod.cluster.local.", A) for i in range(6)]
    asked += [(f"{i + 2}.0.213.127.in-addr.arpa.", PTR) for i in range(6)]
    return asked


@settings(max_examples=60, deadline=None)
@given(operations)
def test_incremental_zone_answers_as_a_full_build(ops: list[tuple[str, object, bool]]) -> None:
    registry = Registry()
    responder = Responder(registry)
    registry.listen(responder.invalidate)
    registry.listen_pods(responder.invalidate_pods)  # as the DNS server follows a registry
    responder.zone  # noqa: B018 - compiled once, so later updates take the incremental path
    for kind, what, flag in ops:
        if kind == "service":
            address = None if flag else f"127.214.0.{NAMES.index(str(what)) + 1}"
            info = ServiceInfo(ServiceKey("default", str(what)), address, (PortInfo("http", 80, 8080),))
            registry.upsert_service(info, {"tier": "x" if what == "db" else "app"})
        elif kind == "delete-service":
            registry.delete_service(ServiceKey("default", str(what)))
        elif kind == "pod":
            index = int(str(what))
            labels = {"tier": "app" if index % 2 else "x"}
            registry.upsert_pod(
                PodRecord("default", f"p{index}", labels, f"127.213.0.{index + 2}", ready=flag)
            )
        else:
            registry.delete_pod("default", f"p{what}")
        incremental = responder.zone
        full = Zone.build(Snapshot.of(registry, serial=registry.index))
        for qname, qtype in questions():
            assert incremental.lookup(qname, qtype) == full.lookup(qname, qtype), (qname, qtype)


def test_srv_of_a_udp_port_says_udp() -> None:
    dns = ServiceKey("default", "dns")
    snap = Snapshot(
        services=(ServiceInfo(dns, "10.213.128.7", (PortInfo("dns", 53, 5353, "UDP"),)),),
        endpoints={dns: (Endpoint("dns-1", "10.213.0.5", {"dns": 5353}),)},
    )
    name = "_dns._udp.dns.default.svc.cluster.local."
    assert [r.split()[-2:] for r in map(str, lookup(snap, name, SRV).answer)] == [
        ["5353", "10-213-0-5.dns.default.svc.cluster.local."]
    ]
    assert lookup(snap, "_dns._tcp.dns.default.svc.cluster.local.", SRV).answer == ()


def test_the_agents_pods_have_a_and_ptr_records_without_a_service() -> None:
    from meshd.dns.zone import Snapshot, Zone

    pods = (("default", "10.213.0.19"), ("prod", "10.213.0.10"))
    zone = Zone.build(Snapshot(SNAPSHOT.services, SNAPSHOT.endpoints, 1, pods))
    assert _strings(zone.lookup("10-213-0-19.default.pod.cluster.local", A).answer) == (
        "10-213-0-19.default.pod.cluster.local. 5 IN A 10.213.0.19",)
    assert _strings(zone.lookup("10.0.213.10.in-addr.arpa", PTR).answer) == (
        "10.0.213.10.in-addr.arpa. 5 IN PTR 10-213-0-10.prod.pod.cluster.local.",)
    assert zone.lookup("10-213-0-19.prod.pod.cluster.local", A).rcode == NXDOMAIN
    # an endpoint's own name (a StatefulSet pod's hostname) wins over the pod name
    with_db = zone.with_pods((*pods, ("default", "10.213.0.7")), serial=2)
    assert _strings(with_db.lookup("7.0.213.10.in-addr.arpa", PTR).answer) == (
        f"7.0.213.10.in-addr.arpa. 5 IN PTR db-0.{D}",)
    gone = with_db.with_pods((), serial=3)
    assert gone.lookup("19.0.213.10.in-addr.arpa", PTR).rcode == REFUSED
    assert gone.lookup(W, A).answer == zone.lookup(W, A).answer

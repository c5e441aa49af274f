"""v1 Endpoints and EndpointSlices group a Service's endpoints by the same ports (model.endpoints.port_groups),
and each port carries its Service port's protocol (a UDP Service's Endpoints said TCP)."""

from __future__ import annotations

from typing import Any

from meshd.api.kube import endpoints
from meshd.controller.records import ObjectRecord
from meshd.manifests import load_documents
from meshd.model.endpoints import Endpoint, ServiceKey, port_groups

DNS = """\
apiVersion: v1
kind: Service
metadata: {name: dns}
spec:
  selector: {app: dns}
  ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP}]
"""


def ep(name: str, ready: bool = True, **ports: int) -> Endpoint:
    return Endpoint(name=name, address=f"10.0.0.{len(name)}", ports={k.replace("_", "-"): v for k, v in ports.items()},
                    ready=ready)


def test_port_groups_are_ordered_by_ports_and_keep_the_endpoints_order() -> None:
    a, b, c = ep("a", http=8080), ep("b", http=9090), ep("c", http=8080)
    assert port_groups([b, a, c]) == [((("http", 8080),), [a, c]), ((("http", 9090),), [b])]
    assert port_groups([]) == []


class Registry:  # the two reads kube.endpoints makes
    def __init__(self, eps: tuple[Endpoint, ...]) -> None:
        self.eps = eps

    def endpoints(self, key: ServiceKey) -> tuple[Endpoint, ...]:
        return self.eps

    def service(self, key: ServiceKey) -> Any:
        return object()


def test_endpoints_carry_the_service_ports_protocols_and_readiness() -> None:
    (service,) = load_documents(DNS).objects
    eps = (ep("a", dns=53, dns_tcp=53), ep("b", ready=False, dns=53, dns_tcp=53))
    shown = endpoints(ObjectRecord(service), Registry(eps))  # type: ignore[arg-type]
    (subset,) = shown["subsets"]
    assert subset["ports"] == [{"name": "dns", "port": 53, "protocol": "UDP"},
                               {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]
    assert [a["targetRef"]["name"] for a in subset["addresses"]] == ["a"]
    assert [a["targetRef"]["name"] for a in subset["notReadyAddresses"]] == ["b"]

"""hostPorts: claims, the scheduler's collision rule, and the record the sidecar serves them with (pure)."""

from __future__ import annotations

import pytest

from meshd.external.hostports import HostPort, collides, host_port_key, host_port_service, host_ports, pod_of
from meshd.manifests.loader import load_documents
from meshd.model.endpoints import ExternalPort, ServiceKey
from meshd.model.objects import Pod
from meshd.registry import Registry
from meshd.registry.endpoints import PodRecord


def pod_spec(ports: str):  # type: ignore[no-untyped-def]
    text = f"apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    image: x\n    ports: {ports}\n"
    (pod,) = load_documents(text).objects
    assert isinstance(pod, Pod)
    return pod.spec


def test_host_ports_on_the_external_addresses_or_the_host_ip() -> None:
    spec = pod_spec("[{containerPort: 8080, hostPort: 18080}, {containerPort: 53, hostPort: 1053, protocol: UDP, "
                    "hostIP: 127.0.0.2}, {containerPort: 9090}]")  # fmt: skip
    assert host_ports(spec, ("127.0.0.1", "10.0.0.5")) == (
        HostPort("127.0.0.1", 18080, "TCP", 8080), HostPort("10.0.0.5", 18080, "TCP", 8080),
        HostPort("127.0.0.2", 1053, "UDP", 53),
    )  # fmt: skip
    assert host_ports(pod_spec("[{containerPort: 80}]"), ("127.0.0.1",)) == ()


@pytest.mark.parametrize(("wanted", "used", "expected"), [
    (HostPort("127.0.0.1", 80, "TCP", 8080), HostPort("127.0.0.1", 80, "TCP", 9090), True),
    (HostPort("127.0.0.1", 80, "TCP", 8080), HostPort("127.0.0.1", 80, "UDP", 8080), False),
    (HostPort("127.0.0.1", 80, "TCP", 8080), HostPort("127.0.0.2", 80, "TCP", 8080), False),
    (HostPort("127.0.0.1", 80, "TCP", 8080), HostPort("0.0.0.0", 80, "TCP", 8080), True),
    (HostPort("0.0.0.0", 80, "TCP", 8080), HostPort("10.0.0.1", 80, "TCP", 8080), True),
    (HostPort("127.0.0.1", 81, "TCP", 8080), HostPort("127.0.0.1", 80, "TCP", 8080), False),
])  # fmt: skip
def test_collisions_follow_the_schedulers_rule(wanted: HostPort, used: HostPort, expected: bool) -> None:
    assert collides([wanted], [used]) is expected


def test_the_sidecars_record_reaches_that_pod_only_whatever_its_readiness_and_stays_out_of_services() -> None:
    ports = (HostPort("127.0.0.1", 18080, "TCP", 8080), HostPort("10.0.0.5", 18080, "TCP", 8080))
    info = host_port_service("default", "web-1", ports)
    assert info.key == host_port_key("default", "web-1") and info.address is None
    assert [(p.port, p.target_port) for p in info.ports] == [(18080, 8080)]
    assert info.external == (ExternalPort("127.0.0.1", 18080, "TCP", "host-18080-tcp"),
                             ExternalPort("10.0.0.5", 18080, "TCP", "host-18080-tcp"))  # fmt: skip
    registry = Registry()
    registry.upsert_service(info, pod="web-1")
    for name in ("web-1", "web-2"):
        registry.upsert_pod(PodRecord("default", name, {"app": "web"}, f"10.1.0.{name[-1]}", ready=False))
    (endpoint,) = registry.endpoints(info.key)
    assert (endpoint.name, endpoint.address, endpoint.ports, endpoint.ready) == ("web-1", "10.1.0.1",
                                                                                 {"host-18080-tcp": 8080}, True)
    assert registry.services() == [] and registry.services(host_ports=True) == [info]
    assert ServiceKey.parse(str(info.key)) == info.key
    assert pod_of(info.key) == "web-1" and pod_of(ServiceKey("default", "web")) is None

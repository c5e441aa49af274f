"""Service ports carry what the sidecar's protocol selection needs: protocol (TCP/UDP) and appProtocol."""

from __future__ import annotations

from meshd.manifests import load_documents
from meshd.model.endpoints import PortInfo, ServiceInfo, ServiceKey

SERVICE = """
apiVersion: v1
kind: Service
metadata:
  name: mixed
  annotations: {meshd.io/opaque-ports: "7000-7010"}
spec:
  selector: {app: x}
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
  - {name: web, port: 80, targetPort: 8080, appProtocol: kubernetes.io/h2c}
"""


def test_udp_and_app_protocol_are_read():
    (service,) = load_documents(SERVICE).objects
    ports = {p.name: p for p in service.ports}
    assert ports["dns"].protocol == "UDP" and ports["dns"].app_protocol is None
    assert ports["dns-tcp"].protocol == "TCP"
    assert ports["web"].app_protocol == "kubernetes.io/h2c"


def test_port_info_wire_format_keeps_app_protocol_optional():
    info = ServiceInfo(
        ServiceKey("default", "x"), "10.0.0.1",
        (PortInfo("web", 80, 8080, "TCP", "grpc"), PortInfo("dns", 53, 53, "UDP")),
    )
    wire = info.to_json()
    assert wire["ports"][0]["appProtocol"] == "grpc"
    assert "appProtocol" not in wire["ports"][1]  # old readers see what they saw before
    assert ServiceInfo.from_json(wire) == info
    old = {"namespace": "default", "name": "x", "ports": [{"name": "a", "port": 1, "targetPort": 1}]}
    assert ServiceInfo.from_json(old).ports[0].app_protocol is None

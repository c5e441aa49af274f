"""The cluster PKI's decisions (meshd/cluster/pki.py, meshd/model/nodeidentity.py), the meshd/1 wire format
(sidecar/mesh/wire.py) and which other nodes' pods become endpoints (meshd/cluster/remote.py)."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meshd.cluster import pki
from meshd.cluster.remote import gateway_of, remote_records
from meshd.model.nodeidentity import node_of, peer_refusal
from sidecar.mesh.wire import END, FIN, Deframer, connect_line, frame, parse_answer, parse_connect

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
HOUR = datetime.timedelta(hours=1)


@pytest.fixture(scope="module")
def ca() -> pki.ClusterCA:
    return pki.make_cluster_ca(NOW)


def node_cert(ca: pki.ClusterCA, name: str = "node-a", *, addresses=("10.0.0.1",), now=NOW,
              validity=pki.DEFAULT_VALIDITY) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    return pki.issue_node_certificate(ca, name, addresses, public_key=key.public_key(), now=now, validity=validity)


def test_the_ca_is_p256_for_ten_years_and_survives_its_secret(ca: pki.ClusterCA):
    assert isinstance(ca.key.curve, ec.SECP256R1)
    assert (ca.cert.not_valid_after_utc - NOW).days >= 3650
    secret = pki.ca_secret(ca)
    assert (secret["kind"], secret["type"], secret["metadata"]["namespace"]) == ("Secret", "kubernetes.io/tls",
                                                                                 "kube-system")
    again = pki.ca_from_secret(secret)
    assert again.cert == ca.cert and again.key.private_numbers() == ca.key.private_numbers()
    with pytest.raises(ValueError, match="no usable CA"):
        pki.ca_from_secret({"data": {"tls.crt": "bm90IGEgY2VydA=="}})


def test_a_node_certificate_is_a_kubelets(ca: pki.ClusterCA):
    cert = node_cert(ca, addresses=("10.0.0.1", "fd00::1"))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:node-a"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:nodes"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["node-a"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.1", "fd00::1"]
    assert cert.not_valid_after_utc - NOW == pki.DEFAULT_VALIDITY
    assert NOW - cert.not_valid_before_utc == datetime.timedelta(minutes=1)  # a minute of clock skew
    short = node_cert(ca, validity=datetime.timedelta(seconds=60))
    assert NOW < pki.rotation_time(short) == NOW + datetime.timedelta(seconds=38)  # 2/3 of (60 + 6 s skew) - 6
    cert.verify_directly_issued_by(ca.cert)
    assert node_of(cert) == "node-a"


def test_a_certificate_from_a_csr_takes_its_key_not_its_name(ca: pki.ClusterCA):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "system:node:admin")]))
           .sign(key, hashes.SHA256()))
    cert = pki.issue_node_certificate(ca, "node-j", ["10.0.0.9"], csr=csr, now=NOW)
    assert cert.public_key() == key.public_key() and node_of(cert) == "node-j"
    with pytest.raises(ValueError, match="DNS name"):
        pki.issue_node_certificate(ca, "no good/name", [], public_key=key.public_key())
    with pytest.raises(ValueError, match="public_key or a csr"):
        pki.issue_node_certificate(ca, "node-j", [])


@pytest.mark.parametrize(("case", "at", "revoked", "addresses", "reason"), [
    ("fresh", NOW + HOUR, {}, ("10.0.0.1",), None),
    ("at 2/3 of its life", NOW + 16 * HOUR, {}, ("10.0.0.1",), "2/3 of its life passed"),
    ("revoked", NOW + HOUR, "own", ("10.0.0.1",), "revoked"),
    ("moved", NOW + HOUR, {}, ("10.0.0.2",), "addresses changed"),
])
def test_when_the_agent_issues_its_certificate_again(ca, case, at, revoked, addresses, reason):
    cert = node_cert(ca)
    revoked = {cert.serial_number: "node-a@0"} if revoked == "own" else revoked
    assert pki.reissue_reason(cert, ca=ca, node_name="node-a", addresses=addresses, revoked=revoked,
                              now=at) == reason
    assert pki.reissue_reason(None, ca=ca, node_name="node-a", addresses=(), revoked={}, now=NOW) == "none yet"
    other = pki.make_cluster_ca(NOW)
    assert pki.reissue_reason(cert, ca=other, node_name="node-a", addresses=(), revoked={},
                              now=NOW) == "not issued by the cluster CA"
    assert pki.reissue_reason(cert, ca=ca, node_name="node-b", addresses=(), revoked={},
                              now=NOW) == "issued to another node"


def test_revocation_list_adds_a_deleted_nodes_serials_once_and_prunes_expired(ca):
    cert = node_cert(ca)
    annotation = pki.serials_annotation("", cert, now=NOW)
    serials = pki.parse_serials(annotation)
    assert serials == [(cert.serial_number, cert.not_valid_after_utc.timestamp())]
    listed = pki.with_revoked(None, "node-a", serials, now=NOW)
    assert listed is not None and list(pki.revoked_serials(listed)) == [cert.serial_number]
    assert pki.with_revoked(listed, "node-a", serials, now=NOW) is None  # a second agent writes nothing
    later = NOW + 2 * pki.DEFAULT_VALIDITY
    pruned = pki.with_revoked(listed, "node-b", [], now=later)
    assert pruned is not None and pki.revoked_serials(pruned) == {}
    assert pki.with_revoked(None, "node-x", [], now=NOW) is None


@pytest.mark.parametrize(("revoked", "nodes", "refusal"), [
    ((), None, None),
    ((), ("node-a",), None),
    ("own", ("node-a",), "is revoked"),
    ((), ("node-b",), "node node-a no longer exists"),
])
def test_the_gateways_check_after_the_handshake(ca, revoked, nodes, refusal):
    cert = node_cert(ca)
    found = peer_refusal(cert, revoked=[cert.serial_number] if revoked == "own" else revoked, nodes=nodes)
    assert (found is None) if refusal is None else (refusal in (found or ""))


def test_a_certificate_that_is_no_node_certificate_is_refused(ca):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(ca.cert.subject).public_key(key.public_key())
            .serial_number(1).not_valid_before(NOW).not_valid_after(NOW + HOUR).sign(ca.key, hashes.SHA256()))
    assert "not a node certificate" in (peer_refusal(cert, revoked=(), nodes=None) or "")


# --- the wire ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "expected"), [
    (b"CONNECT 10.1.2.3:8080", ("10.1.2.3", 8080)),
    (b"CONNECT [fd00::5]:80", ("fd00::5", 80)),
    (b"CONNECT example.com:80", ValueError),
    (b"CONNECT 10.1.2.3:0", ValueError),
    (b"CONNECT 10.1.2.3", ValueError),
    (b"GET / HTTP/1.1", ValueError),
    (b"\xff\xfe", ValueError),
])
def test_connect_lines(line, expected):
    if expected is ValueError:
        with pytest.raises(ValueError):
            parse_connect(line)
    else:
        assert parse_connect(line) == expected
        assert parse_connect(connect_line(*expected).rstrip(b"\n")) == expected


def test_answers():
    assert parse_answer(b"OK") is None
    assert parse_answer(b"ERR 1.2.3.4:80 is not a pod endpoint of this node") == \
        "1.2.3.4:80 is not a pod endpoint of this node"


def test_frames_come_back_whatever_the_reads_split():
    stream = frame(b"hello") + frame(b"x" * 70000) + FIN
    for size in (1, 3, 4, 5, 9, 4096, len(stream)):
        deframer = Deframer()
        out: list[bytes | None] = []
        for i in range(0, len(stream), size):
            out += deframer.feed(stream[i:i + size])
        assert out[-1] is None and b"".join(c for c in out[:-1] if c) == b"hello" + b"x" * 70000, size


def test_a_meshd2_stream_ends_with_end_after_both_fins_whatever_the_split() -> None:
    stream = frame(b"answer") + FIN + END + frame(b"next")
    for size in (1, 2, 3, 4, 5, 7, len(stream)):
        deframer = Deframer()
        out: list[bytes | None] = []
        for i in range(0, len(stream), size):
            out += deframer.feed(stream[i:i + size])
        assert b"".join(c for c in out[:out.index(None)] if c) == b"answer", (size, out)
        after = out[out.index(None) + 1:]
        assert after[0] == b"" and b"".join(c for c in after[1:] if c) == b"next", (size, out)


# --- other nodes' pods -------------------------------------------------------------------------------------------


def node(name: str, *, ready: bool = True, port: str | None = "4143", address: str = "10.0.0.2") -> dict:
    annotations = {pki.MESH_PORT_ANNOTATION: port} if port else {}
    return {"kind": "Node", "metadata": {"name": name, "annotations": annotations},
            "status": {"addresses": [{"type": "InternalIP", "address": address}],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "Unknown"}]}}


def pod(name: str, node_name: str, *, ip: str | None = "10.244.1.5", ready: bool = True,
        deleting: bool = False) -> dict:
    meta = {"name": name, "namespace": "default", "labels": {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node_name, "containers": [{"name": "c", "ports": [
                {"name": "http", "containerPort": 8080}]}]},
            "status": {"podIP": ip, "hostIP": "10.0.0.2",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_other_nodes_ready_pods_become_endpoints_through_their_gateway():
    records = remote_records([pod("web-1", "node-b"), pod("web-0", "node-a"), pod("web-2", "node-c"),
                              pod("web-3", "node-b", ip=None), pod("web-4", "node-b", ready=False),
                              pod("web-5", "node-b", deleting=True), pod("web-6", "node-gone")],
                             [node("node-a"), node("node-b"), node("node-c", ready=False)], own_node="node-a")
    assert sorted(name for _, name in records) == ["web-1", "web-4", "web-5"]
    web1 = records[("default", "web-1")]
    assert (web1.address, web1.node, web1.gateway, web1.ready, dict(web1.named_ports)) == (
        "10.244.1.5", "node-b", "10.0.0.2:4143", True, {"http": 8080})
    assert not records[("default", "web-4")].ready
    assert records[("default", "web-5")].terminating


@pytest.mark.parametrize(("port", "address", "gateway"), [
    ("4200", "10.0.0.2", "10.0.0.2:4200"),
    (None, "10.0.0.2", "10.0.0.2:4143"),
    ("junk", "10.0.0.2", "10.0.0.2:4143"),
    ("4143", "fd00::2", "[fd00::2]:4143"),
])
def test_the_gateway_address_of_a_node(port, address, gateway):
    assert gateway_of(node("n", port=port, address=address)) == gateway


def test_an_endpoints_gateway_is_optional_on_the_wire():
    from meshd.model.endpoints import Endpoint

    local = Endpoint(name="web-0", address="10.0.0.5", ports={"http": 8080}, node="node-a")
    assert "gateway" not in local.to_json()  # what older sidecars and clients read is unchanged
    assert Endpoint.from_json(local.to_json()) == local
    remote = Endpoint(name="web-1", address="10.244.1.5", ports={"http": 8080}, node="node-b",
                      gateway="10.0.0.2:4143")
    assert Endpoint.from_json(remote.to_json()) == remote

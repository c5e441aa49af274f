"""The cluster's PKI for mutual TLS between nodes, pure (objects and certificates in, out): one cluster CA
(ECDSA P-256, 10 years) kept in the store as the Secret kube-system/meshd-cluster-ca, node certificates as
kubelets carry them (CN `system:node:NAME`, O `system:nodes`, SANs the node's name and addresses), short-lived
and issued again at 2/3 of their life, and revocation: a deleted node's serials go into the ConfigMap
kube-system/meshd-revoked (serial -> node and expiry; pruned once expired)."""

from __future__ import annotations

import base64
import datetime
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meshd.model.nodeidentity import NODE_PREFIX, NODES_GROUP, node_of, peer_refusal

SYSTEM_NAMESPACE = "kube-system"
CA_SECRET = "meshd-cluster-ca"
REVOKED_CONFIGMAP = "meshd-revoked"
MESH_PORT_ANNOTATION = "meshd.io/mesh-port"  # on a Node: the port of its mesh gateway (on its InternalIP)
SERIALS_ANNOTATION = "meshd.io/certificate-serials"  # on a Node: its live certificates, "hex@notAfter,..."
DEFAULT_MESH_PORT = 4143  # Linkerd's inbound port
DEFAULT_VALIDITY = datetime.timedelta(hours=24)
CA_YEARS = 10


@dataclass(frozen=True)
class ClusterCA:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, key_cert_sign=ca, crl_sign=ca, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         encipher_only=False, decipher_only=False)


def make_cluster_ca(now: datetime.datetime) -> ClusterCA:
    """A new cluster CA: ECDSA P-256, valid 10 years (as kubeadm's)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshd"),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"meshd-cluster-ca@{int(now.timestamp())}")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365 * CA_YEARS + CA_YEARS // 4))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return ClusterCA(cert, key)


def ca_secret(ca: ClusterCA) -> dict[str, Any]:
    """The CA as a `kubernetes.io/tls` Secret (as kubeadm keeps its CA: tls.crt, tls.key)."""
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": CA_SECRET, "namespace": SYSTEM_NAMESPACE,
                         "labels": {"app.kubernetes.io/managed-by": "meshd"}},
            "data": {"tls.crt": b64(ca.cert_pem()), "tls.key": b64(key_pem(ca.key))}}


def ca_from_secret(secret: Mapping[str, Any]) -> ClusterCA:
    """The CA a Secret holds; ValueError naming what is wrong."""
    data = secret.get("data") or {}
    try:
        cert = x509.load_pem_x509_certificate(base64.b64decode(data["tls.crt"]))
        key = serialization.load_pem_private_key(base64.b64decode(data["tls.key"]), password=None)
    except (KeyError, ValueError, TypeError) as error:
        raise ValueError(f"the Secret {SYSTEM_NAMESPACE}/{CA_SECRET} holds no usable CA: {error}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise ValueError(f"the Secret {SYSTEM_NAMESPACE}/{CA_SECRET}: the key does not match the certificate")
    return ClusterCA(cert, key)


def node_subject(node_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, NODES_GROUP),
                      x509.NameAttribute(NameOID.COMMON_NAME, NODE_PREFIX + node_name)])


def issue_node_certificate(ca: ClusterCA, node_name: str, addresses: Iterable[str], *,
                           public_key: ec.EllipticCurvePublicKey | None = None,
                           csr: x509.CertificateSigningRequest | None = None,
                           validity: datetime.timedelta = DEFAULT_VALIDITY,
                           now: datetime.datetime | None = None) -> x509.Certificate:
    """A node certificate for `public_key` (or a CSR's key, its signature checked; its subject is ignored:
    the name is the CA's to decide), good for client and server auth, valid for `validity` from now (never past
    the CA). ValueError for a bad CSR or a name that is no DNS name."""
    now = now or datetime.datetime.now(datetime.UTC)
    if csr is not None:
        if not csr.is_signature_valid:
            raise ValueError("the certificate signing request's signature does not verify")
        key = csr.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("the certificate signing request must carry an ECDSA key")
        public_key = key
    if public_key is None:
        raise ValueError("issue_node_certificate needs a public_key or a csr")
    if not node_name or len(node_name) > 253 or not all(part and part.replace("-", "").isalnum()
                                                          for part in node_name.split(".")):
        raise ValueError(f"node name {node_name!r} is not a DNS name")
    names = [node_name, *(a for a in dict.fromkeys(addresses) if a and a != node_name)]
    return (x509.CertificateBuilder().subject_name(node_subject(node_name)).issuer_name(ca.cert.subject)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - min(datetime.timedelta(minutes=1), validity / 10))  # clock skew
            .not_valid_after(min(now + validity, ca.cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([general_name(n) for n in names]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                           critical=False)
            .sign(ca.key, hashes.SHA256()))


def rotation_time(cert: x509.Certificate) -> datetime.datetime:
    """When a node certificate is issued again: at 2/3 of its life (as kubelets rotate theirs, 70-90%)."""
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return start + (end - start) * 2 / 3


def reissue_reason(cert: x509.Certificate | None, *, ca: ClusterCA, node_name: str, addresses: Iterable[str],
                   revoked: Mapping[int, Any], now: datetime.datetime) -> str | None:
    """None while the agent's own certificate may stay, else why it is issued again."""
    if cert is None:
        return "none yet"
    if cert.issuer != ca.cert.subject:
        return "not issued by the cluster CA"
    try:
        cert.verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, Exception):  # InvalidSignature is a plain Exception subclass
        return "not issued by the cluster CA"
    if node_of(cert) != node_name:
        return "issued to another node"
    if cert.serial_number in revoked:
        return "revoked"
    if now >= rotation_time(cert):
        return "2/3 of its life passed"
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        have = {*(str(a) for a in san.get_values_for_type(x509.IPAddress)), *san.get_values_for_type(x509.DNSName)}
    except x509.ExtensionNotFound:
        have = set()
    if not {node_name, *addresses} <= have:
        return "addresses changed"
    return None


# --- revocation ---------------------------------------------------------------------------------------------


def serials_annotation(current: str, cert: x509.Certificate, *, now: datetime.datetime, keep: int = 3) -> str:
    """A Node's serials annotation with `cert` added (the latest `keep` not yet expired)."""
    entries = dict(parse_serials(current))
    entries[cert.serial_number] = cert.not_valid_after_utc.timestamp()
    live = sorted(((s, t) for s, t in entries.items() if t > now.timestamp()), key=lambda e: e[1])[-keep:]
    return ",".join(f"{s:x}@{int(t)}" for s, t in live)


def parse_serials(text: str) -> list[tuple[int, float]]:
    """`hex@notAfter,...` as (serial, notAfter seconds); malformed items are left out."""
    out = []
    for item in (text or "").split(","):
        serial, _, expiry = item.strip().partition("@")
        try:
            out.append((int(serial, 16), float(expiry)))
        except ValueError:
            continue
    return out


def revoked_serials(configmap: Mapping[str, Any] | None) -> dict[int, str]:
    """serial -> "NODE@notAfter" of the revocation list (a ConfigMap whose keys are hex serials)."""
    out: dict[int, str] = {}
    for key, value in ((configmap or {}).get("data") or {}).items():
        try:
            out[int(key, 16)] = str(value)
        except ValueError:
            continue
    return out


def with_revoked(configmap: Mapping[str, Any] | None, node_name: str, serials: Iterable[tuple[int, float]], *,
                 now: datetime.datetime) -> dict[str, Any] | None:
    """The revocation list with a deleted node's serials added and expired entries dropped; None when that
    changes nothing (so of several agents seeing one deletion, one writes)."""
    data = dict((configmap or {}).get("data") or {})
    before = dict(data)
    for serial, expiry in serials:
        if expiry > now.timestamp():
            data.setdefault(f"{serial:x}", f"{node_name}@{int(expiry)}")
    for key, value in list(data.items()):
        _, _, until = str(value).rpartition("@")
        try:
            if float(until) <= now.timestamp():
                del data[key]
        except ValueError:
            continue
    if configmap is not None and data == before:
        return None
    if configmap is None and not data:
        return None
    meta = dict((configmap or {}).get("metadata") or {"name": REVOKED_CONFIGMAP, "namespace": SYSTEM_NAMESPACE})
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


__all__ = ["CA_SECRET", "DEFAULT_MESH_PORT", "DEFAULT_VALIDITY", "MESH_PORT_ANNOTATION", "REVOKED_CONFIGMAP",
           "SERIALS_ANNOTATION", "SYSTEM_NAMESPACE", "ClusterCA", "ca_from_secret", "ca_secret",
           "issue_node_certificate", "make_cluster_ca", "node_of", "parse_serials", "peer_refusal",
           "reissue_reason", "revoked_serials", "rotation_time", "serials_annotation", "with_revoked"]

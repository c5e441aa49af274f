"""A stand-in issuer for node certificates at join: a CA kept in the agent's state dir (key 0600) signing a
node's CSR. The join endpoint takes any `issue(node_name, csr_pem) -> (ca_pem, cert_pem)`; the cluster CA
(meshd.cluster.pki) replaces this one when both are on main."""

from __future__ import annotations

import datetime
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meshd.state import write_private

CA_DAYS = 3650
NODE_DAYS = 365


class CsrError(ValueError):
    """A CSR that does not parse or whose signature does not verify."""


def certificate_sha256(path: Path) -> str:
    """The SHA-256 of a PEM certificate's DER form (hex), as a TLS client sees the certificate."""
    return x509.load_pem_x509_certificate(path.read_bytes()).fingerprint(hashes.SHA256()).hex()


def load_csr(csr_pem: bytes) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as error:
        raise CsrError(f"the CSR is not a PEM certificate signing request: {error}") from None
    if not csr.is_signature_valid:
        raise CsrError("the CSR's signature does not verify")
    return csr


def make_key_and_csr(node_name: str) -> tuple[bytes, bytes]:
    """A new P-256 key (PEM, PKCS#8) and a CSR for `node_name` (CN system:node:NAME, O system:nodes)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                                    x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node_name}")]))
           .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


class StateDirIssuer:
    """Signs node certificates with a CA in `directory` (made on first use)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()

    def _ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        cert_path, key_path = self.directory / "ca.crt", self.directory / "ca.key"
        with self._lock:
            if not cert_path.exists():
                self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                key = ec.generate_private_key(ec.SECP256R1())
                name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "meshd cluster CA")])
                now = datetime.datetime.now(datetime.UTC)
                cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
                        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                     content_commitment=False, key_encipherment=False,
                                                     data_encipherment=False, key_agreement=False,
                                                     encipher_only=False, decipher_only=False), critical=True)
                        .sign(key, hashes.SHA256()))
                write_private(key_path, key.private_bytes(serialization.Encoding.PEM,
                                                             serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))  # 0600
                write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        return cert, loaded

    def __call__(self, node_name: str, csr_pem: bytes) -> tuple[bytes, bytes]:
        csr = load_csr(csr_pem)
        ca, ca_key = self._ca()
        now = datetime.datetime.now(datetime.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                             x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node_name}")])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject)
                .public_key(csr.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=NODE_DAYS))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH,
                                                      ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(node_name)]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        return ca.public_bytes(serialization.Encoding.PEM), cert.public_bytes(serialization.Encoding.PEM)


__all__ = ["CsrError", "StateDirIssuer", "certificate_sha256", "load_csr", "make_key_and_csr", "write_private"]

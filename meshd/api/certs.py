"""The API's TLS identity, as k3s and kind make theirs: a private CA and a serving certificate signed by it, in
the state dir (keys 0600). Both are reused across restarts; the serving certificate is issued again when it
nears expiry or its names no longer cover the API's address, the CA when it nears expiry itself.

`reissue_reason` is the decision, pure; `load_or_create_tls` reads and writes the files around it."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meshd.state import CA_FILE, CA_KEY_FILE, CERT_FILE, CERT_KEY_FILE, write_atomically

log = logging.getLogger(__name__)

CA_DAYS = 3650
CERT_DAYS = 365
RENEW_BEFORE = datetime.timedelta(days=30)  # a certificate this close to expiry is issued again
LOCAL_NAMES = ("127.0.0.1", "::1", "localhost")
_WILDCARD = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path

    def ca_pem(self) -> bytes:
        return self.ca.read_bytes()


def wanted_names(api_host: str, *, hostname: str | None = None) -> tuple[str, ...]:
    """The names the serving certificate covers: loopback, `localhost`, and the API's host (for a wildcard
    address, the machine's host name instead)."""
    extra = (hostname or socket.gethostname()) if api_host in _WILDCARD else api_host
    names = list(LOCAL_NAMES)
    if extra and extra not in names:
        names.append(extra)
    return tuple(names)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def cert_names(cert: x509.Certificate) -> frozenset[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset()
    return frozenset([*(str(a) for a in san.get_values_for_type(x509.IPAddress)),
                      *san.get_values_for_type(x509.DNSName)])


def _canonical(names: tuple[str, ...]) -> frozenset[str]:
    out = set()
    for name in names:
        try:
            out.add(str(ipaddress.ip_address(name)))
        except ValueError:
            out.add(name.lower())
    return frozenset(out)


def reissue_reason(cert: x509.Certificate | None, *, ca: x509.Certificate, names: tuple[str, ...],
                   now: datetime.datetime) -> str | None:
    """None when `cert` may keep serving, else why a new one is needed."""
    if cert is None:
        return "none yet"
    if cert.issuer != ca.subject:
        return "not issued by the CA"
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        return "not issued by the CA"
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return "near expiry"
    if not _canonical(names) <= cert_names(cert):
        return "names changed"
    return None


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshd"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(f"meshd-ca@{int(now.timestamp())}")
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def make_serving_cert(*, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, names: tuple[str, ...],
                      now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("meshd-api")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(min(now + datetime.timedelta(days=CERT_DAYS), ca.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    write_atomically(path, _key_pem(key))
    os.chmod(path, 0o600)  # mkstemp made it 0600 already; an explicit mode says so


def _read(path: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    """A certificate and its key (`X.pem`, `X-key.pem`), or None if either is missing or unreadable."""
    key_path = path.with_name(path.stem + "-key.pem")
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        return None
    if os.stat(key_path).st_mode & 0o077:
        log.warning("%s was readable by others; setting its mode to 0600", key_path)
        os.chmod(key_path, 0o600)
    return cert, key


def load_or_create_tls(state_dir: Path, names: tuple[str, ...], *,
                       now: datetime.datetime | None = None) -> TlsFiles:
    """The CA and serving certificate in `state_dir`, made or issued again as needed (blocking: file I/O and
    key generation; call it off the event loop)."""
    now = now or datetime.datetime.now(datetime.UTC)
    files = TlsFiles(ca=state_dir / CA_FILE, cert=state_dir / CERT_FILE, key=state_dir / CERT_KEY_FILE)
    ca_pair = _read(files.ca)
    if ca_pair is None or ca_pair[0].not_valid_after_utc - now < RENEW_BEFORE:
        log.info("making the API's certificate authority in %s", files.ca)
        ca_pair = make_ca(now)
        _write_key(state_dir / CA_KEY_FILE, ca_pair[1])
        write_atomically(files.ca, ca_pair[0].public_bytes(serialization.Encoding.PEM))
    ca, ca_key = ca_pair
    current = _read(files.cert)
    reason = reissue_reason(current[0] if current else None, ca=ca, names=names, now=now)
    if reason is not None:
        log.info("issuing the API's serving certificate for %s (%s)", ", ".join(names), reason)
        cert, key = make_serving_cert(ca=ca, ca_key=ca_key, names=names, now=now)
        _write_key(files.key, key)
        write_atomically(files.cert, cert.public_bytes(serialization.Encoding.PEM))
    return files


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """TLS 1.2 or later, HTTP/1.1 by ALPN (aiohttp's server speaks HTTP/1.1 only)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    context.load_cert_chain(files.cert, files.key)
    return context


def api_tls(state_dir: Path, names: tuple[str, ...]) -> tuple[TlsFiles, ssl.SSLContext]:
    """The files and the server context for the API (blocking: call it off the event loop)."""
    files = load_or_create_tls(state_dir, names)
    return files, server_context(files)

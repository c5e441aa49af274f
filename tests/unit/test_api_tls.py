"""The API's TLS pieces, each alone: the first-byte decision and the wait for that byte (a socket pair), the
certificate decision (table), the files in the state dir, and the kubeconfig that carries the CA."""

from __future__ import annotations

import asyncio
import base64
import datetime
import os
import socket
import ssl
import stat

import pytest
from cryptography import x509

from meshd.api.certs import (
    RENEW_BEFORE,
    load_or_create_tls,
    make_ca,
    make_serving_cert,
    reissue_reason,
    server_context,
    wanted_names,
)
from meshd.api.sniff import first_byte, first_byte_kind
from meshd.cli.credentials import kubeconfig, plain_url, token_from_config

NOW = datetime.datetime(2026, 12, 5, tzinfo=datetime.UTC)
LOCAL = ("127.0.0.1", "::1", "localhost")


@pytest.mark.parametrize(("first", "kind"), [
    (b"", "closed"),
    (b"\x16", "tls"),
    (b"\x16\x03\x01", "tls"),
    (b"G", "http"),  # GET
    (b"P", "http"),
    (b"\x80", "http"),  # an SSLv2 hello is no TLS we speak: the HTTP parser answers 400
    (b"\x15", "http"),
])
def test_first_byte_kind(first, kind):
    assert first_byte_kind(first) == kind


@pytest.mark.parametrize(("host", "names"), [
    ("127.0.0.1", LOCAL),
    ("localhost", LOCAL),
    ("::1", LOCAL),
    ("10.1.2.3", (*LOCAL, "10.1.2.3")),
    ("meshd.example", (*LOCAL, "meshd.example")),
    ("0.0.0.0", (*LOCAL, "node-a")),
    ("::", (*LOCAL, "node-a")),
])
def test_wanted_names(host, names):
    assert wanted_names(host, hostname="node-a") == names


CA, CA_KEY = make_ca(NOW)
OTHER_CA, OTHER_KEY = make_ca(NOW)
CERT, _ = make_serving_cert(ca=CA, ca_key=CA_KEY, names=(*LOCAL, "10.1.2.3"), now=NOW)
FOREIGN, _ = make_serving_cert(ca=OTHER_CA, ca_key=OTHER_KEY, names=LOCAL, now=NOW)


@pytest.mark.parametrize(("cert", "names", "now", "reason"), [
    (None, LOCAL, NOW, "none yet"),
    (CERT, LOCAL, NOW, None),
    (CERT, (*LOCAL, "10.1.2.3"), NOW, None),
    (CERT, ("::0001", "LOCALHOST"), NOW, None),  # the same names, written otherwise
    (CERT, (*LOCAL, "10.9.9.9"), NOW, "names changed"),
    (CERT, (*LOCAL, "meshd.example"), NOW, "names changed"),
    (CERT, LOCAL, CERT.not_valid_after_utc - RENEW_BEFORE - datetime.timedelta(days=1), None),
    (CERT, LOCAL, CERT.not_valid_after_utc - RENEW_BEFORE + datetime.timedelta(days=1), "near expiry"),
    (CERT, LOCAL, CERT.not_valid_after_utc + datetime.timedelta(days=1), "near expiry"),
    (FOREIGN, LOCAL, NOW, "not issued by the CA"),
])
def test_reissue_reason(cert, names, now, reason):
    assert reissue_reason(cert, ca=CA, names=names, now=now) == reason


def test_the_ca_and_certificate_are_made_once_kept_private_and_reused(tmp_path):
    files = load_or_create_tls(tmp_path, LOCAL, now=NOW)
    for key in ("ca-key.pem", "api-key.pem"):
        assert stat.S_IMODE((tmp_path / key).stat().st_mode) == 0o600
    ca, cert = files.ca.read_bytes(), files.cert.read_bytes()
    again = load_or_create_tls(tmp_path, LOCAL, now=NOW + datetime.timedelta(days=100))
    assert (again.ca.read_bytes(), again.cert.read_bytes()) == (ca, cert)
    served = x509.load_pem_x509_certificate(cert)
    assert served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["localhost"]
    server_context(files)  # the key matches the certificate


def test_the_certificate_is_issued_again_for_new_names_or_near_expiry_by_the_same_ca(tmp_path):
    files = load_or_create_tls(tmp_path, LOCAL, now=NOW)
    ca, cert = files.ca.read_bytes(), files.cert.read_bytes()
    load_or_create_tls(tmp_path, (*LOCAL, "10.1.2.3"), now=NOW)
    renamed = files.cert.read_bytes()
    assert files.ca.read_bytes() == ca and renamed != cert
    load_or_create_tls(tmp_path, (*LOCAL, "10.1.2.3"), now=NOW + datetime.timedelta(days=340))
    assert files.ca.read_bytes() == ca and files.cert.read_bytes() != renamed
    context = ssl.create_default_context(cadata=ca.decode())  # a client trusting the first CA still verifies it
    assert context.cert_store_stats()["x509_ca"] == 1


def test_a_damaged_key_or_certificate_is_replaced_and_a_loose_key_mode_tightened(tmp_path):
    files = load_or_create_tls(tmp_path, LOCAL, now=NOW)
    ca = files.ca.read_bytes()
    files.key.write_bytes(b"not a key")
    load_or_create_tls(tmp_path, LOCAL, now=NOW)
    server_context(files)
    assert files.ca.read_bytes() == ca
    os.chmod(tmp_path / "ca-key.pem", 0o644)
    load_or_create_tls(tmp_path, LOCAL, now=NOW)
    assert stat.S_IMODE((tmp_path / "ca-key.pem").stat().st_mode) == 0o600 and files.ca.read_bytes() == ca


def test_the_kubeconfig_names_the_https_server_with_the_ca_and_the_cli_still_finds_its_token():
    config = kubeconfig(server="http://127.0.0.1:7700", token="t", ca_pem=b"PEM")
    cluster = config["clusters"][0]["cluster"]
    assert cluster == {"server": "https://127.0.0.1:7700", "certificate-authority-data": base64.b64encode(
        b"PEM").decode()}
    assert token_from_config(config, "http://127.0.0.1:7700") == "t"  # one port serves both
    assert token_from_config(config, "http://127.0.0.1:7701") is None
    assert kubeconfig(server="http://h:1", token="t")["clusters"][0]["cluster"] == {"server": "http://h:1"}
    assert plain_url("https://[::1]:7700") == "http://[::1]:7700" and plain_url("h:1") == "h:1"


@pytest.mark.usefixtures("no_blocking_calls")
@pytest.mark.parametrize(("sent", "kind"), [(b"\x16\x03\x01", "tls"), (b"GET / HTTP/1.1\r\n", "http")])
async def test_first_byte_waits_for_the_byte_and_leaves_it_in_the_socket(sent, kind):
    server, client = socket.socketpair()
    server.setblocking(False)
    with server, client:
        waiting = asyncio.create_task(first_byte(server, timeout=30))
        await asyncio.sleep(0)
        assert not waiting.done()
        client.send(sent)
        assert await waiting == kind
        assert server.recv(100) == sent  # nothing consumed


@pytest.mark.usefixtures("no_blocking_calls")
async def test_first_byte_of_a_closed_or_silent_connection():
    server, client = socket.socketpair()
    server.setblocking(False)
    with server, client:
        client.shutdown(socket.SHUT_WR)
        assert await first_byte(server, timeout=30) == "closed"
    server, client = socket.socketpair()
    server.setblocking(False)
    with server, client:
        with pytest.raises(TimeoutError):
            await first_byte(server, timeout=0.05)
        client.send(b"G")  # the reader was removed: the socket can be waited on again
        assert await first_byte(server, timeout=30) == "http"

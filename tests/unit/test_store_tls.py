"""etcd over TLS, the pure parts: which flags go together, the SSL context's file errors, the join answer's
`storeTLS` (read, refused when wrong) and what a joined node keeps of it (0600)."""

from __future__ import annotations

import datetime
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from meshd.cluster import pki
from meshd.cluster.joining import JoinError, parse_answer, save_credentials
from meshd.cluster.storecreds import StoreCredentials, read_credentials, saved_tls
from meshd.store.etcdtls import StoreTls, check_flags, client_context



@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """A CA, a client certificate it signed, and the certificate's key; another key."""
    ca = pki.make_cluster_ca(datetime.datetime.now(datetime.UTC))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = pki.issue_node_certificate(ca, "n1", [], public_key=key.public_key())
    paths = {"ca": tmp_path / "ca.crt", "cert": tmp_path / "client.crt", "key": tmp_path / "client.key",
             "other": tmp_path / "other.key"}
    paths["ca"].write_bytes(ca.cert_pem())
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(pki.key_pem(key))
    paths["other"].write_bytes(pki.key_pem(ec.generate_private_key(ec.SECP256R1())))
    return {name: str(path) for name, path in paths.items()}


@pytest.mark.parametrize(("endpoints", "tls", "message"), [
    (["https://a:1"], StoreTls(cert="c.crt"), "--store-cert without --store-key"),
    (["https://a:1"], StoreTls(key="c.key"), "--store-key without --store-cert"),
    (["http://a:1"], StoreTls(ca="ca.crt"), "--store http://a:1 is plain http:// but TLS files were given"),
])
def test_flags_that_do_not_go_together(endpoints: list[str], tls: StoreTls, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_flags(endpoints, tls)


def test_flags_that_do() -> None:
    check_flags(["https://a:1"], StoreTls("ca.crt", "c.crt", "c.key"))
    check_flags(["https://a:1"], StoreTls())  # the system's CAs, no client certificate
    check_flags(["http://a:1"], StoreTls())


def test_the_context_names_the_file_that_is_wrong(files: dict[str, str], tmp_path: Path) -> None:
    context = client_context(StoreTls(files["ca"], files["cert"], files["key"]))
    assert context.verify_mode.name == "CERT_REQUIRED" and context.check_hostname
    with pytest.raises(ValueError, match=f"--store-key {files['other']} is not the key of --store-cert"):
        client_context(StoreTls(files["ca"], files["cert"], files["other"]))
    with pytest.raises(ValueError, match="--store-ca .*: not a PEM CA certificate"):
        client_context(StoreTls(files["key"]))
    with pytest.raises(ValueError, match="--store-cert .*missing.crt: no such file"):
        client_context(StoreTls(files["ca"], str(tmp_path / "missing.crt"), files["key"]))


def test_a_join_answer_carries_the_stores_tls_files(files: dict[str, str], tmp_path: Path) -> None:
    credentials = read_credentials(StoreTls(files["ca"], files["cert"], files["key"]))
    body = {"store": "https://10.0.0.1:2379", "ca": "CA", "certificate": "C", "storeTLS": credentials.to_json()}
    answer = parse_answer("https://a:1", 200, body)
    assert answer.store_tls == credentials
    directory = save_credentials(tmp_path / "state", answer, b"node key")
    kept = saved_tls(directory)
    assert kept == StoreTls(str(directory / "store-ca.crt"), str(directory / "store.crt"), str(directory / "store.key"))
    for path in (kept.ca, kept.cert, kept.key):
        assert path is not None and stat.S_IMODE(Path(path).stat().st_mode) == 0o600
    assert Path(kept.key or "").read_text() == Path(files["key"]).read_text()
    client_context(kept)  # usable as the flags

    plain = parse_answer("https://a:1", 200, {"store": "etcd://10.0.0.1:2379", "ca": "CA", "certificate": "C"})
    assert plain.store_tls is None
    again = save_credentials(tmp_path / "state", plain, b"node key")  # a plain store now: no stale files
    assert saved_tls(again) == StoreTls()


@pytest.mark.parametrize(("store_tls", "message"), [
    ({"ca": "not pem"}, "storeTLS.ca is not PEM"),
    ({"certificate": "-----BEGIN CERTIFICATE-----"}, "a client certificate without its key"),
    ("x", "not an object"),
])
def test_a_wrong_store_tls_in_the_answer_ends_the_join(store_tls: object, message: str) -> None:
    body = {"store": "https://10.0.0.1:2379", "ca": "CA", "certificate": "C", "storeTLS": store_tls}
    with pytest.raises(JoinError, match=message):
        parse_answer("https://a:1", 200, body)


def test_tls_files_for_a_plain_store_end_the_join() -> None:
    body = {"store": "http://10.0.0.1:2379", "ca": "CA", "certificate": "C",
            "storeTLS": StoreCredentials(ca="-----BEGIN CERTIFICATE-----").to_json()}
    with pytest.raises(JoinError, match="TLS files for a plain-HTTP store"):
        parse_answer("https://a:1", 200, body)


def test_the_agents_store_flags_are_checked_before_it_starts() -> None:
    from meshd.cli.common import CliError
    from meshd.cli.main import build_agent_options

    values = {"store": "https://10.0.0.1:2379", "store_ca": "ca.crt", "store_cert": "c.crt", "store_key": "c.key"}
    assert build_agent_options(values, None) == values
    for bad, says in (({"store_ca": "ca.crt"}, "go with --store https://"),
                      ({"join": "abcdef.0123456789abcdef", "store_cert": "c.crt", "store_key": "c.key"},
                       "gets them from the cluster"),
                      ({"store": "http://h:1", "store_ca": "ca.crt"}, "plain http:// but TLS files"),
                      ({"store": "https://h:1", "store_key": "c.key"}, "--store-key without --store-cert"),
                      ({"store": "ftp://h:1"}, "expected https://")):
        with pytest.raises(CliError, match=says):
            build_agent_options(bad, None)

"""The capture helper on a real test LAN: tcpdump on the bridge sees an etcd client request from one host (curl
to etcd's v3 HTTP API on the bridge's address) as plaintext, and an `openssl s_client` / `s_server` exchange
between two hosts as TLS, both ways; what the mesh's "only TLS between nodes" test will rest on."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.capture import capture, flows_between, summarise
from tests.integration.netns_harness import TestLan, usable, wait_for

pytestmark = [pytest.mark.skipif(bool(usable()), reason=usable() or "usable"),
              pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed"),
              pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")]


@pytest.fixture(scope="module")
def lan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestLan]:
    with TestLan(tmp_path_factory.mktemp("lan"), hosts_wanted=2, agents=False) as built:
        yield built


def test_a_capture_on_the_bridge_tells_tls_from_plaintext(lan: TestLan, tmp_path: Path) -> None:
    server, client = lan.hosts[1], lan.hosts[0]
    assert lan.etcd is not None
    etcd = (lan.gateway, lan.etcd.members[0].client_port)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-subj", f"/CN={server.name}", "-days", "1", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
    s_server = lan.popen(server.index, "openssl", "s_server", "-accept", f"{server.address}:4433", "-www",
                         "-cert", str(tmp_path / "cert.pem"), "-key", str(tmp_path / "key.pem"))
    try:
        # the server is up before the capture starts: no failed attempts in it
        wait_for(lambda: lan.run(client.index, "openssl", "s_client", "-connect", f"{server.address}:4433",
                                 "-brief", timeout=10).returncode == 0, timeout=30, what="s_server listening")
        with capture(lan.bridge, tmp_path / "bridge.pcap") as running:
            key = base64.b64encode(b"netns-capture").decode()
            put = lan.run(client.index, "curl", "-sf", "-m", "5", "-X", "POST", f"http://{etcd[0]}:{etcd[1]}/v3/kv/put",
                          "-d", json.dumps({"key": key, "value": base64.b64encode(b"plain").decode()}), check=True)
            assert "header" in put.stdout
            exchange = lan.run(client.index, "sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | openssl s_client "
                                                         f"-connect {server.address}:4433 -quiet -ign_eof",
                               timeout=20)
            assert "s_server" in exchange.stdout or "HTTP/1.0 200" in exchange.stdout, exchange
    finally:
        s_server.kill()
        s_server.wait(5)
    flows = running.flows()
    summary = summarise(flows)
    print("\n".join(f"{kind}: {line}" for kind, lines in summary.items() for line in lines))
    to_etcd = [f for f in flows if f.server == etcd]
    to_tls = [f for f in flows if f.server == (server.address, 4433)]
    assert [f.kind for f in to_etcd] == ["plaintext"], summary
    assert b"/v3/kv/put" in to_etcd[0].sent and b"plain" not in to_etcd[0].sent  # base64 on the wire, still clear
    assert [f.kind for f in to_tls] == ["tls"], summary
    assert to_tls[0].client[0] == client.address and len(to_tls[0].received) > 500  # certificate, response
    assert b"GET / HTTP" not in to_tls[0].sent and b"HTTP/1.0 200" not in to_tls[0].received
    assert {f.kind for f in flows} <= {"tls", "plaintext"}, summary
    assert [f.kind for f in flows_between(flows, [h.address for h in lan.hosts])] == ["tls"]  # host to host

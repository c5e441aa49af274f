"""kubectl-style probe descriptions and the HTTP request the probe sends."""

from __future__ import annotations

import pytest

from meshd.model.objects import ExecAction, HTTPGetAction, Probe, TCPSocketAction
from meshd.probe.describe import describe_probe, describe_result
from meshd.probe.http import build_request, parse_status_line
from meshd.probe.result import ProbeResult


def test_describe_probe_like_kubectl() -> None:
    assert describe_probe(Probe(HTTPGetAction(port="http", path="/healthz"))) == (
        "http-get http://:http/healthz delay=0s timeout=1s period=10s #success=1 #failure=3"
    )
    assert describe_probe(Probe(TCPSocketAction(5432), period_seconds=0.2, failure_threshold=1)) == (
        "tcp-socket :5432 delay=0s timeout=1s period=0.2s #success=1 #failure=1"
    )
    assert describe_probe(Probe(ExecAction(("cat", "/tmp/ok")))).startswith(
        "exec ['cat', '/tmp/ok'] delay=0s"
    )


def test_describe_result() -> None:
    assert describe_result(None) == "<none>"
    assert describe_result(ProbeResult("failure", "HTTP probe failed with statuscode: 500", 0.0031)) == (
        "failure (3.1ms): HTTP probe failed with statuscode: 500"
    )
    assert describe_result(ProbeResult("success", "", 0.0012), timed=False) == "success"
    assert describe_result(ProbeResult("failure", "HTTP probe failed with statuscode: 500", 0.0031), timed=False) == (
        "failure: HTTP probe failed with statuscode: 500"
    )


def test_request_defaults_and_overrides() -> None:
    req = build_request(host="10.213.0.5", port=8080, path="healthz", headers=[("user-agent", "custom")])
    assert req == (
        b"GET /healthz HTTP/1.1\r\nHost: 10.213.0.5:8080\r\nuser-agent: custom\r\nAccept: */*\r\n"
        b"Connection: close\r\n\r\n"
    )
    assert b"Host: [::1]:80\r\n" in build_request(host="::1", port=80, path="/", headers=())


@pytest.mark.parametrize(
    "line,status",
    [
        (b"HTTP/1.1 200 OK\r\n", 200),
        (b"HTTP/1.0 503 Service Unavailable\r\n", 503),
        (b"HTTP/1.1 204\r\n", 204),
        (b"SSH-2.0-OpenSSH\r\n", None),
        (b"HTTP/1.1 2000 OK\r\n", None),
        (b"\r\n", None),
    ],
)
def test_parse_status_line(line: bytes, status: int | None) -> None:
    assert parse_status_line(line) == status

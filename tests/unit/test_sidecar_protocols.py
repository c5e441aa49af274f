"""Protocol selection per Service port and detection from the first bytes: table tests."""

from __future__ import annotations

import pytest

from meshd.model.endpoints import PortInfo
from sidecar.protocols import H2_PREFACE, Protocol, detect, select_protocol

H1, H2, TCP, UDP, DETECT = Protocol.HTTP1, Protocol.H2C, Protocol.TCP, Protocol.UDP, Protocol.DETECT
OPAQUE = {"meshd.io/opaque-ports": "7000, 8000-8010"}


@pytest.mark.parametrize(
    ("name", "port", "protocol", "app", "annotations", "want"),
    [
        # appProtocol first, whatever the name or port says
        ("redis", 6379, "TCP", "http", {}, H1),
        ("web", 80, "TCP", "kubernetes.io/h2c", {}, H2),
        ("http", 80, "TCP", "grpc", {}, H2),
        ("x", 80, "TCP", "GRPC", {}, H2),
        ("x", 80, "TCP", "kubernetes.io/ws", {}, H1),
        ("http", 80, "TCP", "tcp", {}, TCP),
        ("http", 80, "TCP", "example.com/custom", {}, DETECT),  # unknown appProtocol: detect
        # then the port's name
        ("http", 8080, "TCP", None, {}, H1),
        ("http-api", 6379, "TCP", None, {}, H1),
        ("https", 443, "TCP", None, {}, DETECT),  # not http-*: TLS is opaque, found by detection
        ("http2", 80, "TCP", None, {}, H2),
        ("http2-web", 80, "TCP", None, {}, H2),
        ("grpc", 50051, "TCP", None, {}, H2),
        ("grpc-api", 50051, "TCP", None, {}, H2),
        ("tcp", 80, "TCP", None, {}, TCP),
        ("tcp-x", 80, "TCP", None, {}, TCP),
        ("redis", 7000, "TCP", None, {}, TCP),
        ("mysql", 3307, "TCP", None, {}, TCP),
        ("postgresql", 5433, "TCP", None, {}, TCP),
        ("mongodb", 27017, "TCP", None, {}, TCP),
        ("amqp", 5672, "TCP", None, {}, TCP),
        ("kafka-broker", 9092, "TCP", None, {}, TCP),
        ("memcached", 11212, "TCP", None, {}, TCP),
        ("smtp", 2525, "TCP", None, {}, TCP),
        ("HTTP", 80, "TCP", None, {}, H1),
        # then the annotation
        ("", 7000, "TCP", None, OPAQUE, TCP),
        ("web", 8005, "TCP", None, OPAQUE, TCP),
        ("web", 8011, "TCP", None, OPAQUE, DETECT),
        ("http", 7000, "TCP", None, OPAQUE, H1),  # the name comes first
        ("web", 7000, "TCP", None, {"meshd.io/opaque-ports": "bad"}, DETECT),
        # then the server-speaks-first ports
        ("", 6379, "TCP", None, {}, TCP),
        ("db", 5432, "TCP", None, {}, TCP),
        ("", 25, "TCP", None, {}, TCP),
        ("", 587, "TCP", None, {}, TCP),
        ("", 3306, "TCP", None, {}, TCP),
        ("", 4444, "TCP", None, {}, TCP),
        ("", 9300, "TCP", None, {}, TCP),
        ("", 11211, "TCP", None, {}, TCP),
        # else detection
        ("", 80, "TCP", None, {}, DETECT),
        ("web", 7000, "TCP", None, {}, DETECT),
        # UDP ports are UDP, whatever else they say
        ("dns", 53, "UDP", None, {}, UDP),
        ("http", 53, "UDP", "http", {}, UDP),
    ],
)
def test_select_protocol(name, port, protocol, app, annotations, want):
    assert select_protocol(PortInfo(name, port, port, protocol, app), annotations) is want


@pytest.mark.parametrize(
    ("first", "want"),
    [
        (b"", None),
        (b"G", None),
        (b"GET", None),
        (b"GET ", None),
        (b"GET /index.html HT", None),
        (b"GET / HTTP/1.1\r", None),
        (b"GET / HTTP/1.1\r\n", H1),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", H1),
        (b"GET / HTTP/1.0\n", H1),  # bare LF
        (b"POST /api?x=1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n", H1),
        (b"OPTIONS * HTTP/1.1\r\n", H1),
        (b"CONNECT example.com:443 HTTP/1.1\r\n", H1),
        (b"PRI", None),
        (b"PRI * HTTP/2.0\r\n", None),
        (H2_PREFACE[:-1], None),
        (H2_PREFACE, H2),
        (H2_PREFACE + b"\x00\x00\x12\x04\x00", H2),
        (b"PRI * HTTP/1.1\r\n", H1),  # a method named PRI, not the preface
        # anything else is opaque
        (b"*1\r\n$4\r\nPING\r\n", TCP),  # Redis RESP
        (b"PING\r\n", TCP),  # Redis inline
        (b"SET k v\r\n", TCP),  # Redis inline, not a request line
        (b"GET / HTTP/2.0\r\n", TCP),
        (b"\x16\x03\x01\x02\x00\x01", TCP),  # a TLS ClientHello
        (b"\x00\x00\x00\x08\x04\xd2\x16\x2f", TCP),  # a Postgres SSLRequest
        (b"hello world\n", TCP),
        (b" GET / HTTP/1.1\r\n", TCP),
        (b"GET  / HTTP/1.1\r\n", TCP),
        (b"GET / HTTP/1.1 x\r\n", TCP),
        (b"A" * 9000, TCP),  # too long to be a method
        (b"GET /" + b"a" * 9000, TCP),  # too long a request line
    ],
)
def test_detect(first, want):
    assert detect(first) is want


def test_detect_byte_by_byte_never_decides_early():
    """Fed one byte at a time, a request line or the preface is never taken for opaque TCP on the way."""
    for whole, want in ((b"GET /x HTTP/1.1\r\n", H1), (H2_PREFACE, H2)):
        for i in range(len(whole)):
            assert detect(whole[:i]) is None
        assert detect(whole) is want

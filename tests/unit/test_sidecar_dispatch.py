"""The dispatch layer: each listener's protocol from its routes, and detection handing a connection over
to the right codec with the bytes it read (fake transports and codecs; real ones in tests/integration)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from meshd.model.endpoints import PortInfo, ServiceInfo, ServiceKey
from sidecar import codecs
from sidecar.dispatch import Detector, listener_protocol
from sidecar.protocols import H2_PREFACE, Protocol
from sidecar.proxy import ClientConnection, Listener, ProxyOptions, Route
from sidecar.services import ServiceTable
from sidecar.tcp import TcpConnection


def route(port: PortInfo | None, annotations: dict[str, str] | None = None, *, name: str = "svc") -> Route:
    table = ServiceTable()
    state = table.get(ServiceKey("default", name))
    if port is not None:
        state.reset(ServiceInfo(state.key, "10.0.0.1", (port,), annotations or {}), [])
    return Route(state, None)


@pytest.mark.parametrize(
    ("routes", "want"),
    [
        ([route(PortInfo("http", 80, 80))], Protocol.HTTP1),
        ([route(PortInfo("redis", 6379, 6379))], Protocol.TCP),
        ([route(PortInfo("", 6379, 6379))], Protocol.TCP),
        ([route(PortInfo("grpc", 50051, 50051))], Protocol.H2C),
        ([route(PortInfo("", 8080, 8080))], Protocol.DETECT),
        ([route(PortInfo("", 8080, 8080), {"meshd.io/opaque-ports": "8080"})], Protocol.TCP),
        ([route(None)], Protocol.DETECT),  # --listen before discovery said what the port is
        ([route(PortInfo("dns", 53, 53, "UDP"))], Protocol.DETECT),  # a UDP port is not served on a stream
        ([route(PortInfo("http", 80, 80)), route(PortInfo("http-b", 80, 80), name="b")], Protocol.HTTP1),
        ([route(PortInfo("http", 80, 80)), route(PortInfo("tcp", 80, 80), name="b")], Protocol.DETECT),
    ],
)
def test_listener_protocol(routes: list[Route], want: Protocol) -> None:
    assert listener_protocol(routes) is want


def test_a_known_protocol_gets_its_codec_at_accept() -> None:
    http = Listener("127.0.0.1", 1, routes=[route(PortInfo("http", 80, 80))])
    assert http.protocol is Protocol.HTTP1 and type(http.accept()) is ClientConnection
    tcp = Listener("127.0.0.1", 1, routes=[route(PortInfo("redis", 6379, 6379))])
    assert tcp.protocol is Protocol.TCP and type(tcp.accept()) is TcpConnection
    detect = Listener("127.0.0.1", 1, routes=[route(PortInfo("", 8080, 8080))])
    assert type(detect.accept()) is Detector
    detect.set_routes([route(PortInfo("http", 8080, 8080))])  # the Service changed: so does the listener
    assert type(detect.accept()) is ClientConnection


class FakeTransport:
    def __init__(self) -> None:
        self.protocol: Any = None
        self.closed = False

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


class FakeCodec(asyncio.Protocol):
    def __init__(self, kind: Protocol, initial: bytes) -> None:
        self.kind = kind
        self.initial = initial
        self.events: list[Any] = []

    def connection_made(self, transport: Any) -> None:
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        self.events.append(data)

    def eof_received(self) -> bool:
        self.events.append("eof")
        return True


@pytest.fixture
def fake_codecs(monkeypatch: pytest.MonkeyPatch) -> None:
    for kind in (Protocol.HTTP1, Protocol.TCP):
        monkeypatch.setitem(codecs._CODECS, kind, lambda listener, initial, k=kind: FakeCodec(k, initial))
    monkeypatch.delitem(codecs._CODECS, Protocol.H2C, raising=False)


def detecting(timeout: float = 5.0) -> tuple[Detector, FakeTransport]:
    listener = Listener("127.0.0.1", 1, routes=[route(PortInfo("", 8080, 8080))],
                        options=ProxyOptions(detect_timeout=timeout))  # fmt: skip
    detector = listener.accept()
    assert isinstance(detector, Detector)
    transport = FakeTransport()
    detector.connection_made(transport)
    assert listener.streams == {detector}
    return detector, transport


@pytest.mark.usefixtures("fake_codecs")
@pytest.mark.parametrize(
    ("chunks", "kind"),
    [
        ([b"GET / HT", b"TP/1.1\r\nHost: x\r\n\r\n"], Protocol.HTTP1),
        ([b"*1\r\n$4\r\nPING\r\n"], Protocol.TCP),
        ([H2_PREFACE[:10], H2_PREFACE[10:] + b"\x00\x00"], Protocol.TCP),  # h2c without a codec: opaque
    ],
)
async def test_detection_hands_over_with_every_byte_read(chunks: list[bytes], kind: Protocol) -> None:
    detector, transport = detecting()
    for chunk in chunks:
        detector.data_received(chunk)
    codec = transport.protocol
    assert isinstance(codec, FakeCodec) and codec.kind is kind
    assert codec.events == ["made", b"".join(chunks)] and codec.initial == b"".join(chunks)
    assert detector.timer is None and not detector.listener.streams


@pytest.mark.usefixtures("fake_codecs")
async def test_h2c_goes_to_its_codec_once_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        codecs._CODECS, Protocol.H2C, lambda listener, initial: FakeCodec(Protocol.H2C, initial)
    )
    detector, transport = detecting()
    detector.data_received(H2_PREFACE)
    assert transport.protocol.kind is Protocol.H2C


@pytest.mark.usefixtures("fake_codecs")
async def test_a_silent_client_is_opaque_tcp_after_the_timeout_and_does_not_delay_another() -> None:
    _, silent_transport = detecting(timeout=0.05)
    talking, talking_transport = detecting(timeout=0.05)
    talking.data_received(b"GET / HTTP/1.1\r\n")
    assert talking_transport.protocol.kind is Protocol.HTTP1  # at once, whatever the other one does
    assert silent_transport.protocol is None
    await asyncio.sleep(0.1)
    codec = silent_transport.protocol
    assert codec.kind is Protocol.TCP and codec.events == ["made"]


@pytest.mark.usefixtures("fake_codecs")
async def test_eof_while_detecting_decides_and_passes_the_eof_on() -> None:
    detector, transport = detecting()
    detector.data_received(b"GE")
    assert detector.eof_received() is True
    codec = transport.protocol
    assert codec.kind is Protocol.TCP and codec.events == ["made", b"GE", "eof"]

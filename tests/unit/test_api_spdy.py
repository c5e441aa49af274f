"""The SPDY/3.1 codec port-forwarding rests on: frames as kubectl's spdystream writes them, split anywhere."""

from __future__ import annotations

import struct
import zlib

import pytest

from meshd.api import spdy
from meshd.api.spdy_dictionary import DICTIONARY


class Client:
    """What kubectl sends: SYN_STREAMs whose header blocks share one dictionary-primed compressor."""

    def __init__(self) -> None:
        self.deflate = zlib.compressobj(zdict=DICTIONARY)

    def syn_stream(self, stream_id: int, headers: dict[str, str], *, fin: bool = False) -> bytes:
        block = self.deflate.compress(spdy.header_block(headers)) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        return spdy.control(spdy.SYN_STREAM, struct.pack(">IIH", stream_id, 0, 0) + block,
                            flags=spdy.FLAG_FIN if fin else 0)


def test_the_dictionary_is_spdy3s():
    assert len(DICTIONARY) == 1423 and zlib.adler32(DICTIONARY) == 0xE3C6A7C2


def test_a_port_forward_conversation_decodes_whole_whatever_the_split():
    client = Client()
    wire = b"".join([
        spdy.control(spdy.SETTINGS, struct.pack(">I", 0)),
        client.syn_stream(1, {"streamType": "error", "port": "80", "requestID": "0"}),
        client.syn_stream(3, {"streamType": "data", "port": "80", "requestID": "0"}),
        spdy.data(1, b"", fin=True),
        spdy.data(3, b"GET / HTTP/1.0\r\n\r\n"),
        spdy.ping(7),
        spdy.rst_stream(3, 5),
        spdy.control(spdy.GOAWAY, struct.pack(">II", 3, 0)),
    ])
    expected = [
        spdy.Other(spdy.SETTINGS),
        spdy.SynStream(1, {"streamtype": "error", "port": "80", "requestid": "0"}),
        spdy.SynStream(3, {"streamtype": "data", "port": "80", "requestid": "0"}),
        spdy.Data(1, b"", fin=True),
        spdy.Data(3, b"GET / HTTP/1.0\r\n\r\n"),
        spdy.Ping(7),
        spdy.RstStream(3, 5),
        spdy.GoAway(3),
    ]
    for size in (1, 3, 4, 7, len(wire)):
        decoder = spdy.Decoder()
        frames = [f for i in range(0, len(wire), size) for f in decoder.feed(wire[i:i + size])]
        assert frames == expected, size


def test_replies_decompress_with_the_dictionary_in_order():
    encoder, inflate = spdy.Encoder(), zlib.decompressobj(zdict=DICTIONARY)
    for stream_id in (1, 3, 5):
        frame = encoder.syn_reply(stream_id)
        assert frame[:4] == b"\x80\x03\x00\x02" and int.from_bytes(frame[5:8], "big") == len(frame) - 8
        assert struct.unpack(">I", frame[8:12]) == (stream_id,)
        assert spdy.parse_header_block(inflate.decompress(frame[12:])) == {}


@pytest.mark.parametrize(("wire", "message"), [
    (struct.pack(">HHB", 0x8002, 1, 0) + (10).to_bytes(3, "big") + bytes(10), "version 2"),
    (spdy.control(spdy.SYN_STREAM, bytes(5)), "too short"),
    (spdy.control(spdy.SYN_STREAM, bytes(10) + b"not zlib"), "does not decompress"),
])
def test_protocol_errors_are_spdy_errors(wire, message):
    with pytest.raises(spdy.SpdyError, match=message):
        spdy.Decoder().feed(wire)


@pytest.mark.parametrize(("block", "expected"), [
    (spdy.header_block({}), {}),
    (spdy.header_block({"Port": "8080"}), {"port": "8080"}),
    (b"\x00\x00\x00\x01\x00\x00\x00\x09port", None),
    (b"\x00\x00\x00\x01\x00\x00\x00", None),
    (b"\x00\x00\x00\x01\x00\x00\x00\x01\xff\x00\x00\x00\x00", None),
])
def test_header_blocks(block, expected):
    if expected is None:
        with pytest.raises(spdy.SpdyError):
            spdy.parse_header_block(block)
    else:
        assert spdy.parse_header_block(block) == expected


@pytest.mark.parametrize(("headers", "port"), [
    ({"port": "80"}, 80), ({"port": "65535"}, 65535), ({"port": "0"}, None), ({"port": "-1"}, None),
    ({"port": "http"}, None), ({}, None), ({"port": "70000"}, None),
])
def test_forward_port(headers, port):
    from meshd.api.portforward import forward_port

    if port is None:
        with pytest.raises(ValueError):
            forward_port(headers)
    else:
        assert forward_port(headers) == port

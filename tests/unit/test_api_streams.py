"""The channel protocol's framing (v5/v4.channel.k8s.io), as tables."""

from __future__ import annotations

import json

import pytest

from meshd.api.streams import (
    V4,
    V5,
    CloseStdin,
    Ignored,
    Resize,
    Stdin,
    exit_status,
    frame,
    parse_client,
    parse_resize,
    status_frame,
)


@pytest.mark.parametrize(("message", "protocol", "expected"), [
    (b"\x00hello", V5, Stdin(b"hello")),
    (b"\x00", V5, Ignored("empty stdin")),
    (b"", V5, Ignored("empty message")),
    (b'\x04{"Width":80,"Height":24}', V5, Resize(80, 24)),
    (b'\x04{"Width":80}', V5, Ignored("bad resize b'{\"Width\":80}'")),
    (b"\xff\x00", V5, CloseStdin()),
    (b"\xff\x00", V4, Ignored("client message on channel 255")),
    (b"\xff\x01", V5, Ignored("close of channel 01")),
    (b"\xff", V5, Ignored("close of channel none")),
    (b"\x01out", V5, Ignored("client message on channel 1")),
])
def test_client_messages(message, protocol, expected):
    assert parse_client(message, protocol=protocol) == expected


@pytest.mark.parametrize(("payload", "expected"), [
    (b'{"Width":120,"Height":40}', Resize(120, 40)),
    (b'{"Width":0,"Height":0}', Resize(0, 0)),
    (b'{"Width":-1,"Height":40}', None),
    (b'{"Width":true,"Height":40}', None),
    (b'{"Width":"80","Height":40}', None),
    (b'{"Width":70000,"Height":40}', None),
    (b"[80, 24]", None),
    (b"not json", None),
    (b"\xff\xfe", None),
])
def test_resize(payload, expected):
    assert parse_resize(payload) == expected


def test_frames_carry_the_channel_byte_first():
    assert frame(1, b"out") == b"\x01out"
    assert frame(2, b"") == b"\x02"
    with pytest.raises(ValueError):
        frame(256, b"")


@pytest.mark.parametrize(("code", "status", "causes"), [
    (0, "Success", None),
    (3, "Failure", [{"reason": "ExitCode", "message": "3"}]),
    (137, "Failure", [{"reason": "ExitCode", "message": "137"}]),
])
def test_exit_status(code, status, causes):
    sent = status_frame(exit_status(code))
    assert sent[0] == 3
    body = json.loads(sent[1:])
    assert body["status"] == status
    assert (body.get("details") or {}).get("causes") == causes
    if code:
        assert body["reason"] == "NonZeroExitCode"


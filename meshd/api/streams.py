"""The Kubernetes channel protocol over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`), as pure framing.

Every binary message starts with its channel byte: 0 stdin, 1 stdout, 2 stderr, 3 error (one v1 Status at the
end), 4 resize (`{"Width": w, "Height": h}`); v5 adds 255, a client's "close this channel" (`[255, channel]`).
The exec and attach handlers decide with these functions and only move bytes themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
PROTOCOLS = (V5, V4)  # the server's preference; the client offers its own list


@dataclass(frozen=True)
class Stdin:
    data: bytes


@dataclass(frozen=True)
class CloseStdin:
    """The client has no more input (v5's close signal for channel 0)."""


@dataclass(frozen=True)
class Resize:
    width: int
    height: int


@dataclass(frozen=True)
class Ignored:
    """A message meshd has no use for (an empty one, another channel); why says which, for the debug log."""

    why: str


ClientMessage = Stdin | CloseStdin | Resize | Ignored


def frame(channel: int, data: bytes) -> bytes:
    """One server message: the channel byte, then the payload."""
    if not 0 <= channel <= 255:
        raise ValueError(f"channel {channel} is not a byte")
    return bytes((channel,)) + data


def parse_client(message: bytes, *, protocol: str) -> ClientMessage:
    """What a client's binary message asks for; nothing a client sends raises."""
    if not message:
        return Ignored("empty message")
    channel, payload = message[0], message[1:]
    if channel == STDIN:
        return Stdin(payload) if payload else Ignored("empty stdin")
    if channel == RESIZE:
        size = parse_resize(payload)
        return size if size is not None else Ignored(f"bad resize {payload[:64]!r}")
    if channel == CLOSE and protocol == V5:
        if payload[:1] == bytes((STDIN,)):
            return CloseStdin()
        return Ignored(f"close of channel {payload[:1].hex() or 'none'}")
    return Ignored(f"client message on channel {channel}")


def parse_resize(payload: bytes) -> Resize | None:
    """A terminal size, `{"Width": 80, "Height": 24}`; None when it is not one."""
    try:
        size = json.loads(payload)
        width, height = size["Width"], size["Height"]
    except (ValueError, TypeError, KeyError):
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 65535 for v in (width, height)):
        return None
    return Resize(width, height)


def exit_status(code: int) -> dict[str, Any]:
    """The Status sent on the error channel when the command ends: Success, or NonZeroExitCode with the code."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command, exit status {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def error_status(message: str, *, reason: str = "InternalError", code: int = 500) -> dict[str, Any]:
    """The Status sent on the error channel when the command could not run at all."""
    return {"metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}


def status_frame(status: dict[str, Any]) -> bytes:
    return frame(ERROR, json.dumps(status, separators=(",", ":")).encode())


"""The wire protocol of the listening-socket handover: listening sockets that outlive the node sidecar (as systemd socket activation and Envoy's hot restart do).

The sidecar serves a SOCK_SEQPACKET Unix socket in the state dir (`sidecar-fds.sock`, owner only). The agent
connects to it and receives a dup of every listening socket the sidecar holds, one message per socket keyed by
(address, port, protocol): `{"op": "add", "key": [...]}` with the fd attached (SCM_RIGHTS), then `{"op":
"synced"}` once the snapshot is complete, then live `add`/`del`. The agent only holds these fds (it never
accepts on them). When it starts a new sidecar, it passes them with `pass_fds` and lists them in the
environment variable MESHD_SIDECAR_FDS; the new sidecar adopts an inherited socket instead of binding anew, so
connections that queued in the backlog while no sidecar ran are accepted, not refused. An agent that restarts
connects again and gets the snapshot again. Whoever holds the fd of a Service that went away closes it.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

SOCKET_NAME = "sidecar-fds.sock"
PATH_VARIABLE = "MESHD_SIDECAR_HANDOVER"  # the sidecar serves its fds here
FDS_VARIABLE = "MESHD_SIDECAR_FDS"  # JSON [[fd, address, port, protocol], ...]: sockets the sidecar inherits
CLOEXEC = getattr(socket, "MSG_CMSG_CLOEXEC", 0)
MAX_PATH = 100  # sun_path holds 108 bytes

Key = tuple[str, int, str]  # address, port, "TCP" or "UDP"


def handover_path(state_dir: Path) -> str | None:
    """The rendezvous socket's path, or None when it is too long for a Unix socket address."""
    path = str(state_dir.resolve() / SOCKET_NAME)
    return path if len(path.encode()) <= MAX_PATH else None


def encode(op: str, key: Key | None = None) -> bytes:
    return json.dumps({"op": op, "key": list(key) if key is not None else None}).encode()


def decode(data: bytes) -> tuple[str, Key | None]:
    """One message -> (op, key); ValueError for anything malformed."""
    try:
        message = json.loads(data)
        op = message["op"]
        raw = message.get("key")
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise ValueError(f"malformed handover message: {data[:80]!r}") from error
    if op not in ("add", "del", "synced"):
        raise ValueError(f"unknown handover op {op!r}")
    if op == "synced":
        return op, None
    return op, parse_key(raw)


def parse_key(raw: Any) -> Key:
    if (not isinstance(raw, list) or len(raw) != 3 or not isinstance(raw[0], str) or type(raw[1]) is not int
            or raw[2] not in ("TCP", "UDP")):
        raise ValueError(f"bad handover key {raw!r}")
    return raw[0], raw[1], raw[2]


def encode_inherited(fds: dict[Key, int]) -> str:
    return json.dumps([[fd, *key] for key, fd in sorted(fds.items())])


def decode_inherited(text: str) -> dict[Key, int]:
    """MESHD_SIDECAR_FDS -> {key: fd}; ValueError when malformed."""
    try:
        rows = json.loads(text)
        if not isinstance(rows, list):
            raise ValueError("not a list")
        out: dict[Key, int] = {}
        for row in rows:
            if not isinstance(row, list) or len(row) != 4 or type(row[0]) is not int:
                raise ValueError(f"bad row {row!r}")
            out[parse_key(row[1:])] = row[0]
        return out
    except (ValueError, TypeError) as error:
        raise ValueError(f"{FDS_VARIABLE}: {error}") from error

"""Listening sockets that outlive the node sidecar (as systemd socket activation and Envoy's hot restart do).

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

import asyncio
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

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


class FdKeeper:
    """Agent side: follows the sidecar's handover socket and holds a dup of each of its listening sockets,
    across sidecar deaths (until a new sidecar's snapshot says which are still wanted)."""

    def __init__(self, path: str, *, retry: float = 0.2) -> None:
        self.path = path
        self.retry = retry
        self.fds: dict[Key, int] = {}
        self._stale: dict[Key, int] = {}  # held from before the current connection, not yet confirmed

    def dups(self) -> dict[Key, int]:
        """A dup of every fd held (confirmed or not), for the caller to pass on and close."""
        out: dict[Key, int] = {}
        for key, fd in {**self._stale, **self.fds}.items():
            try:
                out[key] = os.dup(fd)
            except OSError as error:  # EMFILE: that socket is bound anew by the next sidecar
                log.warning("cannot pass on the socket of %s:%d/%s: %s", *key, error)
        return out

    def apply(self, op: str, key: Key | None, fd: int | None, stale: dict[Key, int]) -> None:
        """One message. `stale`: fds held from before this connection, not yet confirmed by its snapshot."""
        if op == "add" and key is not None and fd is not None:
            for old in (self.fds.pop(key, None), stale.pop(key, None)):
                if old is not None:
                    os.close(old)
            self.fds[key] = fd
        elif op == "del" and key is not None:
            for old in (self.fds.pop(key, None), stale.pop(key, None)):
                if old is not None:
                    os.close(old)
        elif op == "synced":
            for old in stale.values():
                os.close(old)
            stale.clear()

    async def run(self) -> None:
        """Connects (again and again: the sidecar may not be up yet, or may die) and follows the messages."""
        loop = asyncio.get_running_loop()
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, self.path)
            except OSError:
                sock.close()
                await asyncio.sleep(self.retry)
                continue
            stale, self.fds = self.fds, {}
            self._stale = stale
            try:
                await self._follow(loop, sock, stale)
            finally:
                sock.close()
                self._stale = {}
                for key, fd in stale.items():  # the snapshot was cut short: keep what it did not replace
                    if key in self.fds:
                        os.close(fd)
                    else:
                        self.fds[key] = fd
            await asyncio.sleep(self.retry)

    async def _follow(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, stale: dict[Key, int]) -> None:
        readable = asyncio.Event()
        loop.add_reader(sock.fileno(), readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                while True:
                    try:
                        # close-on-exec: a pod the agent spawns (uvloop closes no fds for it) must not
                        # inherit a listening socket, or it holds the port for good
                        data, fds, _flags, _addr = socket.recv_fds(sock, 4096, 4, CLOEXEC)
                    except BlockingIOError:
                        break
                    except OSError as error:
                        log.debug("sidecar fd handover: %s", error)
                        return
                    for fd in fds:
                        os.set_inheritable(fd, False)
                    if not data and not fds:
                        return  # the sidecar exited
                    try:
                        op, key = decode(data)
                    except ValueError as error:
                        for fd in fds:
                            os.close(fd)
                        log.warning("sidecar fd handover: %s", error)
                        continue
                    for extra in fds[1:]:
                        os.close(extra)
                    self.apply(op, key, fds[0] if fds else None, stale)
        finally:
            loop.remove_reader(sock.fileno())

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

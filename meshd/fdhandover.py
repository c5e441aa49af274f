"""The agent's half of the listening-socket handover (the protocol: meshd/model/handover.py): it holds a dup of
each of the sidecar's listening sockets and passes them to the next sidecar."""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from meshd.model.handover import CLOEXEC, Key, decode

log = logging.getLogger(__name__)


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

"""The sidecar's half of the listening-socket handover (see meshd/fdhandover.py): it adopts the sockets it
inherited from the agent, and serves a dup of every listening socket it holds to the agent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from meshd.model.handover import FDS_VARIABLE, PATH_VARIABLE, Key, decode_inherited, encode

log = logging.getLogger("meshd.sidecar.handover")


class FdServer:
    def __init__(self, path: str, inherited: dict[Key, socket.socket]) -> None:
        self.path = path
        self.inherited = inherited  # not adopted yet: kept (and served) until the Services are known
        self.held: dict[Key, socket.socket] = {}  # dups of the listeners' sockets
        self.agents: set[socket.socket] = set()
        self.server: socket.socket | None = None

    @classmethod
    def from_env(cls) -> FdServer | None:
        path = os.environ.pop(PATH_VARIABLE, "")
        text = os.environ.pop(FDS_VARIABLE, "")
        inherited: dict[Key, socket.socket] = {}
        if text:
            try:
                fds = decode_inherited(text)
            except ValueError as error:
                log.error("%s; binding anew", error)
                fds = {}
            for key, fd in fds.items():
                try:
                    inherited[key] = socket.socket(fileno=fd)
                    inherited[key].set_inheritable(False)
                except OSError as error:
                    log.warning("inherited fd %d for %s:%d/%s: %s", fd, *key, error)
            log.info("inherited %d listening sockets", len(inherited))
        if not path:
            for sock in inherited.values():
                sock.close()
            return None
        return cls(path, inherited)

    def take(self, key: Key) -> socket.socket | None:
        """The inherited socket for `key` (already bound, a TCP one listening), for a listener to adopt."""
        return self.inherited.pop(key, None)

    def drop_unwanted(self, wanted: set[Key]) -> None:
        """Closes inherited sockets whose Service went away (called once the Services are known)."""
        for key in [k for k in self.inherited if k not in wanted]:
            log.info("closing the inherited socket of %s:%d/%s (no Service there any more)", *key)
            self.inherited.pop(key).close()
            self._send_all("del", key, None)

    def register(self, key: Key, sock: socket.socket) -> None:
        """A listener's socket: a dup is kept (whatever the event loop does with the original) and served."""
        old = self.held.pop(key, None)
        if old is not None:
            old.close()
        self.held[key] = sock.dup()
        self._send_all("add", key, self.held[key])

    def unregister(self, key: Key) -> None:
        held = self.held.pop(key, None)
        if held is not None:
            held.close()
            self._send_all("del", key, None)

    def close(self) -> None:
        """Stopping: this process's dups close (a listener that stops accepting must not keep its port)."""
        for sock in [*self.inherited.values(), *self.held.values()]:
            sock.close()
        self.inherited.clear()
        self.held.clear()

    def _snapshot(self) -> list[tuple[Key, socket.socket]]:
        return [*self.inherited.items(), *self.held.items()]

    def _send(self, conn: socket.socket, op: str, key: Key | None, sock: socket.socket | None) -> bool:
        """Never blocks: a full buffer (an agent that does not read) drops the connection; it reconnects."""
        try:
            socket.send_fds(conn, [encode(op, key)], [sock.fileno()] if sock is not None else [])
            return True
        except OSError as error:
            log.debug("fd handover to the agent: %s", error)
            self._drop(conn)
            return False

    def _send_all(self, op: str, key: Key | None, sock: socket.socket | None) -> None:
        for conn in list(self.agents):
            self._send(conn, op, key, sock)

    def _drop(self, conn: socket.socket) -> None:
        if conn in self.agents:
            self.agents.discard(conn)
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(conn.fileno())
            conn.close()

    def _bind(self) -> socket.socket:
        """The rendezvous socket, owner only (blocking: touches the file system)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            server.bind(self.path)
            os.chmod(self.path, 0o600)
        except BaseException:
            server.close()
            raise
        server.listen(8)
        return server

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        server = self.server = await asyncio.to_thread(self._bind)
        server.setblocking(False)
        try:
            while True:
                conn, _ = await loop.sock_accept(server)
                conn.setblocking(False)
                self.agents.add(conn)
                loop.add_reader(conn.fileno(), self._readable, conn)
                for key, sock in self._snapshot():
                    if not self._send(conn, "add", key, sock):
                        break
                else:
                    self._send(conn, "synced", None, None)
        finally:
            for conn in list(self.agents):
                self._drop(conn)
            server.close()

    def _readable(self, conn: socket.socket) -> None:
        """The agent sends nothing: readable means it went away."""
        try:
            if conn.recv(64):
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        self._drop(conn)

"""Docker exec sessions: exec_create/exec_start(socket=True) on a hijacked socket of a client of their own, read
in a thread of their own and written through the default executor; never on the loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

STDOUT, STDERR = 1, 2


def demux_docker(buffer: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Docker's multiplexed exec/attach stream (8-byte header: stream, 0, 0, 0, big-endian size) -> the complete
    (channel, payload) frames in `buffer` (stdout 1, stderr 2; stdin echoes 0 count as stdout) and what is left."""
    frames: list[tuple[int, bytes]] = []
    offset = 0
    while len(buffer) - offset >= 8:
        size = int.from_bytes(buffer[offset + 4:offset + 8], "big")
        if len(buffer) - offset - 8 < size:
            break
        stream = buffer[offset]
        payload = buffer[offset + 8:offset + 8 + size]
        if payload:
            frames.append((STDERR if stream == 2 else STDOUT, payload))
        offset += 8 + size
    return frames, buffer[offset:]


class DockerExecSession:
    def __init__(self, client: Any, exec_id: str, sock: socket.socket, *, tty: bool) -> None:
        self._client, self._exec_id, self._sock, self._tty = client, exec_id, sock, tty
        self._closed = False

    @classmethod
    async def start(cls, make_client: Callable[[], Any], container_id: str, command: tuple[str, ...], *,
                    stdin: bool, tty: bool) -> DockerExecSession:
        """Raises the SDK's errors (the container is gone, the engine refuses) for the caller to translate."""

        def run() -> DockerExecSession:
            client = make_client()
            try:
                api = client.api
                exec_id = api.exec_create(container_id, list(command), stdin=stdin, stdout=True, stderr=True,
                                          tty=tty, environment={"TERM": "xterm"} if tty else None)["Id"]
                raw = api.exec_start(exec_id, socket=True, tty=tty)
                sock = getattr(raw, "_sock", raw)
                sock.settimeout(None)
                return cls(client, exec_id, sock, tty=tty)
            except BaseException:
                client.close()
                raise

        return await asyncio.to_thread(run)

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()

        def pump() -> None:
            rest = b""
            try:
                while data := self._sock.recv(65536):
                    if self._tty:
                        loop.call_soon_threadsafe(queue.put_nowait, (STDOUT, data))
                        continue
                    frames, rest = demux_docker(rest + data)
                    for item in frames:
                        loop.call_soon_threadsafe(queue.put_nowait, item)
            except OSError:
                pass  # closed by close(), or the engine went away
            finally:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(queue.put_nowait, None)

        threading.Thread(target=pump, name="meshd-docker-exec", daemon=True).start()
        while (item := await queue.get()) is not None:
            yield item

    async def write(self, data: bytes) -> None:
        await asyncio.to_thread(self._sock.sendall, data)

    async def close_stdin(self) -> None:
        with contextlib.suppress(OSError):
            await asyncio.to_thread(self._sock.shutdown, socket.SHUT_WR)

    async def resize(self, width: int, height: int) -> None:
        await asyncio.to_thread(self._client.api.exec_resize, self._exec_id, height=height, width=width)

    async def _inspect(self) -> dict[str, Any]:
        return await asyncio.to_thread(self._client.api.exec_inspect, self._exec_id)

    async def wait(self) -> int:
        for _ in range(100):  # the engine records the exit code just after the stream ends
            state = await self._inspect()
            if not state.get("Running") and state.get("ExitCode") is not None:
                return int(state["ExitCode"])
            await asyncio.sleep(0.05)
        return -1

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            state = await self._inspect()
            if state.get("Running") and state.get("Pid"):
                os.kill(int(state["Pid"]), signal.SIGKILL)  # an exec has no stop verb; the agent is the host
        with contextlib.suppress(OSError):
            self._sock.close()
        await asyncio.to_thread(self._client.close)

"""Interactive exec sessions (`kubectl exec -i/-t`): a command in a container whose stdin, stdout and stderr
stream while it runs, with a pseudo-terminal on request. The process driver's sessions live here; Docker's in
docker_exec.py. Everything runs on the loop or in threads, never blocking it."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import pty
import signal
import struct
import termios
from collections.abc import AsyncIterator, Mapping
from typing import Protocol

STDOUT, STDERR = 1, 2


class ExecSession(Protocol):
    def output(self) -> AsyncIterator[tuple[int, bytes]]:
        """(1 stdout | 2 stderr, bytes) as the command writes them, until its output ends (a tty's is stdout)."""

    async def write(self, data: bytes) -> None: ...

    async def close_stdin(self) -> None: ...

    async def resize(self, width: int, height: int) -> None: ...

    async def wait(self) -> int:
        """The exit code (128+N for a signal), once the output has ended."""

    async def close(self) -> None:
        """Kills the command if it still runs and frees the session; safe to call twice."""


def winsize(width: int, height: int) -> bytes:
    return struct.pack("HHHH", height, width, 0, 0)


class ProcessExecSession:
    """A local subprocess in a container's environment and working directory; with tty, on a pty of its own."""

    def __init__(self, proc: asyncio.subprocess.Process, master: int | None) -> None:
        self._proc = proc
        self._master = master

    @classmethod
    async def start(cls, command: tuple[str, ...], *, cwd: str | None, env: Mapping[str, str], stdin: bool,
                    tty: bool) -> ProcessExecSession:
        """Raises OSError when the command cannot start (FileNotFoundError: no such command)."""
        if not tty:
            proc = await asyncio.create_subprocess_exec(
                *command, cwd=cwd, env=dict(env), start_new_session=True,
                stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            return cls(proc, None)
        master, slave = pty.openpty()
        try:
            proc = await asyncio.create_subprocess_exec(
                *command, cwd=cwd, env={"TERM": "xterm", **env}, start_new_session=True,
                stdin=slave, stdout=slave, stderr=slave)
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        return cls(proc, master)

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        if self._master is None:
            async for item in self._pipes():
                yield item
            return
        async for data in self._pty():
            yield STDOUT, data

    async def _pipes(self) -> AsyncIterator[tuple[int, bytes]]:
        queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(maxsize=64)

        async def pump(channel: int, reader: asyncio.StreamReader | None) -> None:
            while reader is not None and (data := await reader.read(65536)):
                await queue.put((channel, data))
            await queue.put(None)

        tasks = [asyncio.create_task(pump(STDOUT, self._proc.stdout)),
                 asyncio.create_task(pump(STDERR, self._proc.stderr))]
        try:
            ended = 0
            while ended < len(tasks):
                item = await queue.get()
                if item is None:
                    ended += 1
                else:
                    yield item
        finally:
            for task in tasks:
                task.cancel()

    async def _pty(self) -> AsyncIterator[bytes]:
        """Reads the pty until every writer closed it (EIO) or, after the command exits, nothing is left."""
        assert self._master is not None
        master = self._master
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(master, readable.set)
        exited = asyncio.ensure_future(self._proc.wait())
        try:
            while True:
                try:
                    data = os.read(master, 65536)
                except BlockingIOError:
                    if exited.done():
                        return  # the command is gone and its output drained (background children may hold the pty)
                    readable.clear()
                    await asyncio.wait([asyncio.ensure_future(readable.wait()), exited],
                                       return_when=asyncio.FIRST_COMPLETED)
                    continue
                except OSError as exc:
                    if exc.errno == errno.EIO:
                        return
                    raise
                if not data:
                    return
                yield data
        finally:
            loop.remove_reader(master)
            if not exited.done():
                exited.cancel()

    async def write(self, data: bytes) -> None:
        if self._master is not None:
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(self._master, view):]
                except BlockingIOError:
                    await asyncio.sleep(0.01)  # the pty's buffer is full: the command reads slower than we write
            return
        if self._proc.stdin is not None:
            self._proc.stdin.write(data)
            await self._proc.stdin.drain()

    async def close_stdin(self) -> None:
        if self._master is not None:
            await self.write(b"\x04")  # end of input on a terminal
        elif self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()

    async def resize(self, width: int, height: int) -> None:
        if self._master is not None:
            fcntl.ioctl(self._master, termios.TIOCSWINSZ, winsize(width, height))

    async def wait(self) -> int:
        code = await self._proc.wait()
        return 128 - code if code < 0 else code

    async def close(self) -> None:
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            await self._proc.wait()
        if self._master is not None:
            os.close(self._master)
            self._master = None

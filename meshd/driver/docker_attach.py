"""`kubectl attach -i` (and `kubectl run -it`) on Docker: the container's own stdin, stdout and stderr over a
hijacked attach socket, for a container created with `stdin: true` (Docker's OpenStdin; `tty: true` its
terminal). Read in a thread of its own, written through the default executor, never on the loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any

from meshd.driver.docker_exec import DockerExecSession


class DockerAttachSession(DockerExecSession):
    """The exec session's reading and writing, on an attach socket: resize resizes the container's terminal,
    close leaves the container running."""

    def __init__(self, client: Any, container_id: str, sock: socket.socket, *, tty: bool) -> None:
        super().__init__(client, "", sock, tty=tty)
        self._container_id = container_id

    @classmethod
    async def attach(cls, make_client: Callable[[], Any], container_id: str, *, stdin: bool,
                     tty: bool) -> DockerAttachSession:
        def run() -> DockerAttachSession:
            client = make_client()
            try:
                params = {"stdin": int(stdin), "stdout": 1, "stderr": 1, "stream": 1}
                raw = client.api.attach_socket(container_id, params=params)
                sock = getattr(raw, "_sock", raw)
                sock.settimeout(None)
                return cls(client, container_id, sock, tty=tty)
            except BaseException:
                client.close()
                raise

        return await asyncio.to_thread(run)

    async def resize(self, width: int, height: int) -> None:
        await asyncio.to_thread(self._client.api.resize, self._container_id, height=height, width=width)

    async def wait(self) -> int:
        """0: an attach succeeded when its stream ended, whatever the process's exit code, as the kubelet
        answers it (kubectl reads the exit code from the pod's status: `kubectl run -it --rm` exits with it)."""
        return 0

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.close()
        await asyncio.to_thread(self._client.close)


def create_stdin_once(make_client: Callable[[], Any], image: str, kwargs: dict[str, Any]) -> Any:
    """`containers.create(image, **kwargs)` with Docker's StdinOnce (`stdinOnce: true`: the container's stdin
    closes when the attached client closes its own, so `echo cmds | kubectl run -i -- sh` ends), which the SDK
    has no argument for: its config is amended on a client of this call's own, never on a shared one."""
    client = make_client()
    api = client.api
    create_from_config = api.create_container_from_config

    def with_stdin_once(config: dict[str, Any], name: Any = None, platform: Any = None) -> Any:
        return create_from_config({**config, "StdinOnce": True}, name, platform)

    api.create_container_from_config = with_stdin_once
    try:
        created = client.containers.create(image, **kwargs)
    except BaseException:
        client.close()
        raise
    return created  # on its own client (`created.client`), which the caller closes once it started it

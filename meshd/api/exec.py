"""`pods/exec` and `pods/attach` over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`), as kubectl 1.30+
speaks them. The framing is streams.py's; this module moves bytes between the socket and a driver session and
sends one Status on the error channel at the end. SPDY is not served: a request that is not a WebSocket upgrade
gets a 400 Status saying so."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from meshd.api import status as api_status
from meshd.api.podcontainer import container_name, running_container_id
from meshd.api.streams import (
    PROTOCOLS,
    STDERR,
    STDOUT,
    CloseStdin,
    Ignored,
    Resize,
    Stdin,
    error_status,
    exit_status,
    frame,
    parse_client,
    status_frame,
)
from meshd.controller.loop import Controller
from meshd.controller.pod import PodWorker
from meshd.driver.base import DriverError
from meshd.driver.session import ExecSession

log = logging.getLogger(__name__)

TRUE = ("1", "true", "True")


def flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "") in TRUE


def worker_of(controller: Controller, request: web.Request) -> PodWorker:
    namespace, name = request.match_info["ns"], request.match_info["name"]
    worker = controller.pods.get((namespace, name))
    if worker is None:
        raise KeyError(f'pods "{name}" not found')
    return worker


async def upgraded(request: web.Request) -> web.WebSocketResponse | web.Response:
    """The WebSocket speaking the best channel protocol both sides know, or a 400 Status why not."""
    ws = web.WebSocketResponse(protocols=PROTOCOLS, max_msg_size=4 * 1024 * 1024)
    ready = ws.can_prepare(request)
    if not ready.ok:
        return api_status.response(400, "Upgrade request required: meshd serves exec, attach and port-forward "
                                        "over WebSocket (v5.channel.k8s.io) only, not SPDY")
    if ready.protocol is None:
        offered = request.headers.get("Sec-WebSocket-Protocol", "")
        return api_status.response(400, f"none of the offered subprotocols [{offered}] is supported; meshd "
                                        f"speaks {', '.join(PROTOCOLS)}")
    await ws.prepare(request)
    return ws


def add_routes(router: web.UrlDispatcher, controller: Controller, streams: set[web.StreamResponse]) -> None:
    """Registers exec and attach (GET for WebSocket clients, POST as the API server accepts too)."""

    def track(ws: web.StreamResponse) -> Callable[[], None]:
        ws._meshd_task = asyncio.current_task()  # type: ignore[attr-defined]  # the server cancels it on close
        streams.add(ws)
        return lambda: streams.discard(ws)

    async def exec_(request: web.Request) -> web.StreamResponse:
        worker = worker_of(controller, request)
        container_id = running_container_id(worker, request.query.get("container"))
        command = tuple(request.query.getall("command", ()))
        if not command:
            raise ValueError("you must specify at least one command for the container")
        stdin, stdout, stderr, tty = (flag(request, n) for n in ("stdin", "stdout", "stderr", "tty"))
        if not (stdin or stdout or stderr):
            raise ValueError("you must specify at least one of stdin, stdout, stderr")
        return await relayed(request, lambda: controller.driver.open_exec(container_id, command, stdin=stdin, tty=tty),
                             stdin=stdin, stdout=stdout, stderr=stderr, tty=tty)

    async def attach(request: web.Request) -> web.StreamResponse:
        """The main process's stdio (`stdin: true` containers on a driver that attaches: `kubectl run -it`),
        else its output from now on (`-i` to a container whose stdin is closed is refused)."""
        worker = worker_of(controller, request)
        container_id = running_container_id(worker, request.query.get("container"))
        spec = attachable(worker, request.query.get("container"), controller.driver)
        if spec is not None:
            return await attach_stdio(request, spec.tty and flag(request, "tty"), container_id)
        if flag(request, "stdin"):
            raise ValueError("the container's stdin is not open (it needs `stdin: true`, as `kubectl run -i` "
                             "sets it, and the Docker driver), so attach -i is not supported: use kubectl exec "
                             "-it POD -- sh instead")
        ws = await upgraded(request)
        if not isinstance(ws, web.WebSocketResponse):
            return ws
        untrack = track(ws)
        try:
            if flag(request, "stdout") or flag(request, "stderr"):
                async for chunk in controller.driver.logs(container_id, follow=True, tail=0):
                    await ws.send_bytes(frame(STDOUT, chunk))
            await ws.send_bytes(status_frame(exit_status(0)))
        except DriverError as error:
            await ws.send_bytes(status_frame(error_status(str(error))))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            untrack()
            with contextlib.suppress(Exception):
                await ws.close()
        return ws

    async def attach_stdio(request: web.Request, tty: bool, container_id: str) -> web.StreamResponse:
        stdin, stdout, stderr = (flag(request, n) for n in ("stdin", "stdout", "stderr"))
        return await relayed(
            request, lambda: controller.driver.open_attach(container_id, stdin=stdin, tty=tty),  # type: ignore[attr-defined]
            stdin=stdin, stdout=stdout, stderr=stderr, tty=tty)

    async def relayed(request: web.Request, opened: Callable[[], Awaitable[ExecSession]], *, stdin: bool,
                      stdout: bool, stderr: bool, tty: bool) -> web.StreamResponse:
        """Upgrades to a WebSocket, opens the driver's session and relays it (a driver's refusal as a Status)."""
        ws = await upgraded(request)
        if not isinstance(ws, web.WebSocketResponse):
            return ws
        untrack = track(ws)
        try:
            try:
                session = await opened()
            except DriverError as error:
                await ws.send_bytes(status_frame(error_status(str(error))))
                return ws
            try:
                await converse(ws, session, stdin=stdin, stdout=stdout, stderr=stderr and not tty, tty=tty)
            finally:
                await session.close()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            untrack()
            with contextlib.suppress(Exception):
                await ws.close()
        return ws

    for verb, handler in (("exec", exec_), ("attach", attach)):
        router.add_get(f"/api/v1/namespaces/{{ns}}/pods/{{name}}/{verb}", handler)
        router.add_post(f"/api/v1/namespaces/{{ns}}/pods/{{name}}/{verb}", handler)


def attachable(worker: Any, requested: str | None, driver: Any) -> Any:
    """The container's spec when attach can reach its own stdio (created with `stdin: true`, on a driver that
    attaches), else None."""
    name = container_name(worker, requested)
    spec = next((c for c in (*worker.spec.init_containers, *worker.spec.containers) if c.name == name), None)
    return spec if spec is not None and spec.stdin and hasattr(driver, "open_attach") else None


async def converse(ws: web.WebSocketResponse, session: ExecSession, *, stdin: bool, stdout: bool, stderr: bool,
                   tty: bool) -> None:
    """Output to the client until the command's output ends, then its exit Status; input from the client to the
    command meanwhile. A client that goes away ends the command (the caller closes the session)."""
    protocol = ws.ws_protocol or PROTOCOLS[0]
    wanted = {STDOUT: stdout, STDERR: stderr}

    async def output() -> None:
        async for channel, data in session.output():
            if wanted.get(channel):
                await ws.send_bytes(frame(channel, data))
        await ws.send_bytes(status_frame(exit_status(await session.wait())))

    async def input_() -> None:
        accepting = stdin
        async for message in ws:
            if message.type != WSMsgType.BINARY:
                continue
            parsed = parse_client(message.data, protocol=protocol)
            try:
                if isinstance(parsed, Stdin) and accepting:
                    await session.write(parsed.data)
                elif isinstance(parsed, CloseStdin) and accepting:
                    accepting = False
                    await session.close_stdin()
                elif isinstance(parsed, Resize) and tty:
                    await session.resize(parsed.width, parsed.height)
                elif isinstance(parsed, Ignored):
                    log.debug("exec: %s", parsed.why)
            except (OSError, DriverError) as error:  # the command stopped reading; its exit status still goes out
                log.debug("exec: input dropped: %s", error)
                accepting = False

    sending = asyncio.create_task(output())
    receiving = asyncio.create_task(input_())
    try:
        await asyncio.wait([sending, receiving], return_when=asyncio.FIRST_COMPLETED)
        if sending.done():
            sending.result()
    finally:
        for task in (sending, receiving):
            task.cancel()
        await asyncio.gather(sending, receiving, return_exceptions=True)

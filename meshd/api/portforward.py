"""`pods/portforward` as kubectl 1.37 speaks it: SPDY/3.1 tunnelled in WebSocket binary messages (subprotocol
`SPDY/3.1+portforward.k8s.io`). Per local connection kubectl opens an error stream and a data stream sharing a
`requestID` and naming the pod's `port`; the agent connects to the pod's address and port and pipes bytes.
A connection that fails is reported on the error stream, as the kubelet words it."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import WSMsgType, web

from meshd.api import spdy
from meshd.api import status as api_status
from meshd.api.exec import worker_of
from meshd.controller.loop import Controller

log = logging.getLogger(__name__)

TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
CHUNK = 32 * 1024


def forward_port(headers: dict[str, str]) -> int:
    """The pod's port a stream names; ValueError when it is not one."""
    raw = headers.get("port", "")
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"invalid port {raw!r}")
    return int(raw)


class Tunnel:
    """One kubectl port-forward session: the SPDY streams and the pod connections behind them."""

    def __init__(self, ws: web.WebSocketResponse, address: str, pod: str) -> None:
        self.ws, self.address, self.pod = ws, address, pod
        self.encoder = spdy.Encoder()
        self.lock = asyncio.Lock()
        self.error_streams: dict[str, int] = {}  # requestID -> its error stream
        self.inboxes: dict[int, asyncio.Queue[spdy.Data | None]] = {}  # data stream -> bytes for the pod
        self.tasks: dict[int, asyncio.Task[None]] = {}

    async def send(self, frame: bytes) -> None:
        async with self.lock:
            await self.ws.send_bytes(frame)

    async def reply(self, stream_id: int) -> None:
        async with self.lock:  # the header compressor's order is the wire's order
            await self.ws.send_bytes(self.encoder.syn_reply(stream_id))

    async def run(self) -> None:
        decoder = spdy.Decoder()
        try:
            async for message in self.ws:
                if message.type != WSMsgType.BINARY:
                    continue
                for frame in decoder.feed(message.data):
                    if not await self.handle(frame):
                        return
        except spdy.SpdyError as error:
            log.info("port-forward to %s: %s", self.pod, error)
        finally:
            for task in self.tasks.values():
                task.cancel()
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    async def handle(self, frame: spdy.Frame) -> bool:
        """Acts on one frame; False ends the session."""
        if isinstance(frame, spdy.SynStream):
            await self.reply(frame.stream_id)
            kind, request = frame.headers.get("streamtype"), frame.headers.get("requestid", "")
            if kind == "error":
                self.error_streams[request] = frame.stream_id
            elif kind == "data":
                stream_id = frame.stream_id
                self.inboxes[stream_id] = asyncio.Queue()  # the client may send before the pod answers
                task = asyncio.create_task(self.pipe(stream_id, request, frame.headers))
                self.tasks[stream_id] = task
                task.add_done_callback(lambda _: self.tasks.pop(stream_id, None))
            else:
                await self.send(spdy.rst_stream(frame.stream_id, spdy.RST_REFUSED_STREAM))
        elif isinstance(frame, spdy.Data):
            inbox = self.inboxes.get(frame.stream_id)
            if inbox is not None:
                inbox.put_nowait(frame)
        elif isinstance(frame, spdy.RstStream):
            piping = self.tasks.get(frame.stream_id)
            if piping is not None:
                piping.cancel()
        elif isinstance(frame, spdy.Ping):
            await self.send(spdy.ping(frame.id))
        elif isinstance(frame, spdy.GoAway):
            return False
        return True

    async def pipe(self, stream_id: int, request: str, headers: dict[str, str]) -> None:
        try:
            port = forward_port(headers)
            reader, writer = await asyncio.open_connection(self.address, port)
        except (ValueError, OSError) as error:
            port_text = headers.get("port", "?")
            await self.fail(request, f"error forwarding port {port_text} to pod {self.pod}: {error}")
            await self.send(spdy.data(stream_id, b"", fin=True))
            return
        to_pod = asyncio.create_task(self.to_pod(self.inboxes[stream_id], writer))
        try:
            while chunk := await reader.read(CHUNK):
                await self.send(spdy.data(stream_id, chunk))
            await self.send(spdy.data(stream_id, b"", fin=True))
        except (ConnectionError, OSError):
            with contextlib.suppress(ConnectionError, OSError):
                await self.send(spdy.rst_stream(stream_id, spdy.RST_PROTOCOL_ERROR))
        finally:
            to_pod.cancel()
            self.inboxes.pop(stream_id, None)
            writer.close()
            error_stream = self.error_streams.pop(request, None)
            if error_stream is not None:
                with contextlib.suppress(ConnectionError, OSError):
                    await self.send(spdy.data(error_stream, b"", fin=True))

    @staticmethod
    async def to_pod(inbox: asyncio.Queue[spdy.Data | None], writer: asyncio.StreamWriter) -> None:
        """The client's bytes to the pod, in order; its FIN half-closes the pod connection."""
        with contextlib.suppress(ConnectionError, OSError):
            while (frame := await inbox.get()) is not None:
                if frame.data:
                    writer.write(frame.data)
                    await writer.drain()
                if frame.fin:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return

    async def fail(self, request: str, message: str) -> None:
        error_stream = self.error_streams.pop(request, None)
        if error_stream is not None:
            await self.send(spdy.data(error_stream, message.encode(), fin=True))


def add_routes(router: web.UrlDispatcher, controller: Controller, streams: set[web.StreamResponse]) -> None:
    async def portforward(request: web.Request) -> web.StreamResponse:
        worker = worker_of(controller, request)
        if not worker.address:
            raise ValueError(f"pod {worker.name} has no address yet: it is not running")
        ws = web.WebSocketResponse(protocols=(TUNNEL_PROTOCOL,), max_msg_size=4 * 1024 * 1024)
        ready = ws.can_prepare(request)
        if not ready.ok or ready.protocol is None:
            return api_status.response(400, "Upgrade request required: meshd serves port-forward as SPDY/3.1 "
                                            f"tunnelled over WebSocket ({TUNNEL_PROTOCOL}), not plain SPDY")
        await ws.prepare(request)
        ws._meshd_task = asyncio.current_task()  # type: ignore[attr-defined]  # the server cancels it on close
        streams.add(ws)
        try:
            await Tunnel(ws, worker.address, worker.name).run()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            streams.discard(ws)
            with contextlib.suppress(Exception):
                await ws.close()
        return ws

    router.add_get("/api/v1/namespaces/{ns}/pods/{name}/portforward", portforward)
    router.add_post("/api/v1/namespaces/{ns}/pods/{name}/portforward", portforward)

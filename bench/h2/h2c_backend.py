"""A plain h2c (HTTP/2 prior knowledge) server for tests and benchmarks, on asyncio and h2.

Every request gets 200 with the body "NAME /path\\n" (the request body is read and dropped), or with
`?size=N` N bytes. Usage: python h2c_backend.py NAME HOST:PORT  (prints "ready" when listening)
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, RequestReceived, StreamEnded, WindowUpdated
from h2.exceptions import H2Error


class Server(asyncio.Protocol):
    def __init__(self, name: bytes) -> None:
        self.name = name
        self.h2 = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        self.transport: Any = None
        self.paths: dict[int, bytes] = {}
        self.pending: dict[int, bytes] = {}  # response bytes waiting for window

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.h2.initiate_connection()
        transport.write(self.h2.data_to_send())

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except H2Error:
            self.transport.write(self.h2.data_to_send())
            self.transport.close()
            return
        for ev in events:
            if isinstance(ev, RequestReceived):
                self.paths[ev.stream_id] = dict(ev.headers).get(b":path", b"/")
            elif isinstance(ev, DataReceived):
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, StreamEnded):
                self.respond(ev.stream_id)
            elif isinstance(ev, WindowUpdated):
                for sid in list(self.pending):
                    self.send(sid)
        self.transport.write(self.h2.data_to_send())

    def respond(self, sid: int) -> None:
        path = self.paths.pop(sid, b"/")
        if b"size=" in path:
            body = b"x" * int(path.split(b"size=", 1)[1].split(b"&")[0])
        else:
            body = self.name + b" " + path + b"\n"
        self.h2.send_headers(sid, [(b":status", b"200"), (b"content-length", b"%d" % len(body)),
                                   (b"content-type", b"text/plain")])  # fmt: skip
        self.pending[sid] = body
        self.send(sid)

    def send(self, sid: int) -> None:
        body = self.pending[sid]
        n = min(self.h2.local_flow_control_window(sid), len(body))
        frame = self.h2.max_outbound_frame_size
        for i in range(0, n, frame):
            self.h2.send_data(sid, body[i : min(i + frame, n)])
        body = body[n:]
        if body:
            self.pending[sid] = body
        else:
            del self.pending[sid]
            self.h2.end_stream(sid)


async def main() -> None:
    name, address = sys.argv[1], sys.argv[2]
    host, port = address.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Server(name.encode()), host, int(port))
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except KeyboardInterrupt:
        pass

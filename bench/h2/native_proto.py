"""Prototype (issue 10's shortcut measure): the smallest h2c proxy loop on the native codec, to see whether
0.5x nginx is reachable before building it all. Each client stream goes round-robin to one of the backends
over one upstream h2c connection per backend; no policies, no flow control beyond the codec's.

    PYTHONPATH=. python bench/h2/native_proto.py LISTEN_HOST:PORT BACKEND_HOST:PORT [BACKEND...]
"""

import asyncio
import itertools
import sys

import uvloop

from sidecar.h2.events import DATA, END, HEADERS, TRAILERS
from sidecar.h2.native import NativeConnection

WINDOW, CONN_WINDOW = 1 << 20, (1 << 31) - 1


class Up(asyncio.Protocol):
    def __init__(self) -> None:
        self.c = NativeConnection(client=True)
        self.c.start(window=WINDOW, conn_window=CONN_WINDOW)
        self.s: dict[int, tuple["Down", int]] = {}

    def connection_made(self, t) -> None:  # type: ignore[no-untyped-def]
        self.t = t
        t.write(self.c.data_to_send())

    def data_received(self, data: bytes) -> None:
        for kind, sid, p, x in self.c.receive(data):
            down, dsid = self.s.get(sid, (None, 0))
            if down is None:
                continue
            if kind == HEADERS:
                down.c.send_headers(dsid, p, end=bool(x))
            elif kind == DATA:
                down.c.send_data(dsid, p)
                self.c.ack(sid, x)
            elif kind == END:
                down.c.end_stream(dsid)
            elif kind == TRAILERS:
                down.c.send_headers(dsid, p, end=True)
            down.dirty()
        self.t.write(self.c.data_to_send())


class Down(asyncio.Protocol):
    def connection_made(self, t) -> None:  # type: ignore[no-untyped-def]
        self.t = t
        self.c = NativeConnection(client=False)
        self.c.start(window=WINDOW, conn_window=CONN_WINDOW, max_streams=256)
        self.h: asyncio.Handle | None = None

    def dirty(self) -> None:
        if self.h is None:
            self.h = asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.h = None
        self.t.write(self.c.data_to_send())

    def data_received(self, data: bytes) -> None:
        for kind, sid, p, x in self.c.receive(data):
            if kind == HEADERS:
                up = next(ROUND_ROBIN)
                up.s[up.c.send_request(p, end=bool(x))] = (self, sid)
                up.t.write(up.c.data_to_send())
        self.flush()


async def main() -> None:
    global ROUND_ROBIN
    loop = asyncio.get_running_loop()
    ups = []
    for backend in sys.argv[2:]:
        host, port = backend.rsplit(":", 1)
        ups.append((await loop.create_connection(Up, host, int(port)))[1])
    ROUND_ROBIN = itertools.cycle(ups)
    host, port = sys.argv[1].rsplit(":", 1)
    server = await loop.create_server(Down, host, int(port))
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main())

"""Prototype (issue 10's shortcut measure): the smallest h2c proxy loop on the native codec, to see whether
0.5x nginx is reachable before building it all. Each client stream goes round-robin to one of the
backends over one upstream h2c connection per backend; no policies. `python native_proto.py LISTEN B1 [B2..]`."""
import asyncio, sys, itertools
import uvloop
from sidecar.h2.native import NativeConnection
from sidecar.h2.events import HEADERS, DATA, END, TRAILERS

class Up(asyncio.Protocol):
    def __init__(self): self.c = NativeConnection(client=True); self.c.start(window=1 << 20, conn_window=(1 << 31) - 1); self.s = {}
    def connection_made(self, t): self.t = t; t.write(self.c.data_to_send())
    def data_received(self, data):
        for kind, sid, p, x in self.c.receive(data):
            down, dsid = self.s.get(sid, (None, 0))
            if down is None: continue
            if kind == HEADERS: down.c.send_headers(dsid, [h for h in p if h[0] != b"content-length"] if False else p, end=bool(x))
            elif kind == DATA: down.c.send_data(dsid, p); self.c.ack(sid, x)
            elif kind == END: down.c.end_stream(dsid)
            elif kind == TRAILERS: down.c.send_headers(dsid, p, end=True)
            down.dirty()
        self.t.write(self.c.data_to_send())

class Down(asyncio.Protocol):
    def connection_made(self, t): self.t = t; self.c = NativeConnection(client=False); self.c.start(window=1 << 20, conn_window=(1 << 31) - 1, max_streams=256); self.h = None
    def dirty(self):
        if self.h is None: self.h = loop.call_soon(self.flush)
    def flush(self): self.h = None; self.t.write(self.c.data_to_send())
    def data_received(self, data):
        for kind, sid, p, x in self.c.receive(data):
            if kind == HEADERS:
                up = next(rr); usid = up.c.send_request(p, end=bool(x)); up.s[usid] = (self, sid); up.t.write(up.c.data_to_send())
        self.flush()

async def main():
    global loop, rr
    loop = asyncio.get_running_loop(); ups = []
    for b in sys.argv[2:]:
        h, p = b.rsplit(":", 1); _, up = await loop.create_connection(Up, h, int(p)); ups.append(up)
    rr = itertools.cycle(ups)
    h, p = sys.argv[1].rsplit(":", 1); srv = await loop.create_server(Down, h, int(p))
    await srv.serve_forever()

uvloop.run(main())

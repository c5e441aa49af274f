#!/usr/bin/env python3
"""The sidecar's per-request Python cost without sockets: one client connection and one pooled upstream
connection on fake transports, driven with wrk's request and nginx's response (keep-alive, 2 backends).

    python bench/proxy/hotpath.py                 # us per request (best of 5 runs of 200,000)
    python bench/proxy/hotpath.py --profile       # cProfile of one run, top functions by own time
    python bench/proxy/hotpath.py --root /tmp/base   # another checkout's sidecar package
    python bench/proxy/hotpath.py --vary          # every request and response head differs (a request id)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Wed, 25 Nov 2026 01:19:22 GMT\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 14\r\nConnection: keep-alive\r\n\r\n"
    b"hello from b1\n"
)


class FakeTransport:
    def __init__(self) -> None:
        self.n = 0

    def write(self, data: bytes) -> None:
        self.n += 1

    def set_write_buffer_limits(self, high: int | None = None) -> None:
        pass

    def get_extra_info(self, key: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if key == "peername" else default

    def close(self) -> None:
        pass

    abort = close

    def pause_reading(self) -> None:
        pass

    resume_reading = pause_reading


def build() -> tuple[Any, list[Any]]:
    from meshd.model.endpoints import Endpoint, PortInfo, Reset, ServiceInfo, ServiceKey
    from sidecar.proxy import ClientConnection, Listener, Route, UpstreamConnection
    from sidecar.services import ServiceTable

    table = ServiceTable()
    key = ServiceKey("default", "web")
    table.apply(
        Reset(
            ServiceInfo(key, None, (PortInfo("http", 80, "http"),)),
            (Endpoint("b0", "127.0.0.1", {"http": 1}), Endpoint("b1", "127.0.0.2", {"http": 1})),
        )
    )
    svc = table.services[key]
    listener = Listener("127.0.0.1", 8080, routes=[Route(svc, None)])
    listener.loop = asyncio.new_event_loop()
    ups = []
    for ep in svc.endpoints.values():
        up = UpstreamConnection(ep, 1)
        up.connection_made(FakeTransport())
        ep.idle[1] = [up]
        ups.append(up)
    client = ClientConnection(listener)
    client.connection_made(FakeTransport())
    return client, ups


def messages(n: int, vary: bool) -> tuple[list[bytes], list[bytes]]:
    """n requests and responses: the same ones, or each with its own X-Request-Id header."""
    if not vary:
        return [REQUEST] * n, [RESPONSE] * n
    ids = [b"X-Request-Id: %032x\r\n\r\n" % i for i in range(n)]
    return [REQUEST[:-2] + i for i in ids], [RESPONSE.replace(b"\r\n\r\n", b"\r\n" + i, 1) for i in ids]


def run(n: int, vary: bool = False) -> float:
    client, ups = build()
    by_ep = {up.ep: up for up in ups}
    feed = client.data_received
    requests, responses = messages(n, vary)
    t0 = time.process_time()  # (CPU time: the machine is shared, wall time counts the others)
    for request, response in zip(requests, responses):
        feed(request)
        ex = client.queue[0]
        by_ep[ex.ep].data_received(response)
    t = time.process_time() - t0
    assert not client.queue and client.transport.n == n, (len(client.queue), client.transport.n)
    return t / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=ROOT, help="checkout whose sidecar package is measured")
    ap.add_argument("-n", type=int, default=200_000)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--vary", action="store_true", help="every request and response head differs")
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.root))
    import sidecar

    if args.profile:
        import cProfile
        import pstats

        cProfile.runctx("run(args.n, args.vary)", globals(), {"run": run, "args": args}, "/tmp/hotpath.prof")
        pstats.Stats("/tmp/hotpath.prof").sort_stats("tottime").print_stats(20)
        return
    best = min(run(args.n, args.vary) for _ in range(5))
    print(f"{sidecar.__file__}: {best:.2f} us/request")


if __name__ == "__main__":
    main()

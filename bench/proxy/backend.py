"""A test backend (aiohttp) with behaviours the sidecar tests need; run as a script or in-process.

GET /            "hello from NAME" (X-Backend: NAME)       /bytes/N    N bytes, Content-Length
/chunked/N       N bytes, chunked                            /echo       streams the request body back
/headers         the request headers as JSON                 /status/C   status C
/sleep/S         answers after S seconds                     /cut        promises 100000 bytes, sends 10, closes
/ws              WebSocket echo                              /count      requests served so far
/drop            closes the connection without a response
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import WSMsgType, web


def make_app(name: str, *, fail_status: int = 0) -> web.Application:
    """`fail_status`: answer every request with this status (a broken replica)."""
    served = [0]

    @web.middleware
    async def count(request: web.Request, handler):  # type: ignore[no-untyped-def]
        if request.path != "/count":
            served[0] += 1
        if fail_status and request.path != "/count":
            return web.Response(status=fail_status, text=f"{name} is failing\n", headers={"X-Backend": name})
        resp = await handler(request)
        if isinstance(resp, web.Response | web.StreamResponse) and not resp.prepared:
            resp.headers["X-Backend"] = name
        return resp

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"hello from {name}\n")

    async def bytes_(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        return web.Response(body=b"x" * n)

    async def chunked(request: web.Request) -> web.StreamResponse:
        n = int(request.match_info["n"])
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        resp.headers["X-Backend"] = name
        await resp.prepare(request)
        block = b"y" * 65536
        while n > 0:
            await resp.write(block[: min(n, len(block))])
            n -= len(block)
        await resp.write_eof()
        return resp

    async def echo(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        resp.headers["X-Backend"] = name
        await resp.prepare(request)
        async for data in request.content.iter_any():
            await resp.write(data)
        await resp.write_eof()
        return resp

    async def headers(request: web.Request) -> web.Response:
        return web.json_response({"headers": [[k, v] for k, v in request.headers.items()], "path": request.path_qs,
                                  "method": request.method, "backend": name})  # fmt: skip

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text=f"status from {name}\n")

    async def sleep(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.match_info["s"]))
        return web.Response(text=f"slept on {name}\n")

    async def cut(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "100000", "X-Backend": name})
        await resp.prepare(request)
        await resp.write(b"0123456789")
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.abort()
        return resp

    async def drop(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.abort()  # no response at all
        return web.Response()

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            if msg.type == WSMsgType.TEXT:
                await sock.send_str(f"{name}: {msg.data}")
        return sock

    async def count_(request: web.Request) -> web.Response:
        return web.Response(text=str(served[0]))

    app = web.Application(middlewares=[count], client_max_size=1 << 30)
    app.router.add_get("/", hello)
    app.router.add_get("/bytes/{n}", bytes_)
    app.router.add_get("/chunked/{n}", chunked)
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/headers", headers)
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_get("/sleep/{s}", sleep)
    app.router.add_get("/cut", cut)
    app.router.add_get("/ws", ws)
    app.router.add_get("/drop", drop)
    app.router.add_get("/count", count_)
    return app


async def start(
    name: str, host: str = "127.0.0.1", port: int = 0, *, fail_status: int = 0
) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(make_app(name, fail_status=fail_status), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--fail-status", type=int, default=0, help="answer everything with this status")
    a = p.parse_args()
    web.run_app(
        make_app(a.name, fail_status=a.fail_status), host=a.host, port=a.port, print=None, access_log=None
    )

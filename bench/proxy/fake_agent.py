"""A stand-in for the meshd agent's endpoint API, for sidecar tests and benchmarks.

Serves `GET /v1/watch/endpoints` (ndjson: Reset per Service, Synced, then live updates and heartbeats),
`GET /v1/namespaces/{ns}/endpoints/{name}?watch=1`, and records `POST /v1/drain`. Tests drive it
in-process (`FakeAgent`); as a script it serves a JSON file of Services (`--config`) or `--generate`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from aiohttp import web

from meshd.model.endpoints import (
    Add,
    DoesNotExist,
    Endpoint,
    PortInfo,
    Remove,
    Reset,
    ServiceInfo,
    ServiceKey,
    Update,
    update_to_json,
)


def service(name: str, address: str | None, port: int, *, namespace: str = "default",
            annotations: dict[str, str] | None = None, port_name: str = "http") -> ServiceInfo:  # fmt: skip
    return ServiceInfo(
        ServiceKey(namespace, name), address, (PortInfo(port_name, port, port_name),), annotations or {}
    )


def endpoint(name: str, address: str, port: int, *, ready: bool = True, port_name: str = "http") -> Endpoint:
    return Endpoint(name=name, address=address, ports={port_name: port}, ready=ready)


class FakeAgent:
    def __init__(self, *, heartbeat: float = 10.0) -> None:
        self.services: dict[ServiceKey, tuple[ServiceInfo, dict[str, Endpoint]]] = {}
        self.streams: list[tuple[asyncio.Queue[dict[str, Any] | None], ServiceKey | None]] = []
        self.drains: list[dict[str, str]] = []
        self.drain_event = asyncio.Event()
        self.watchers = 0
        self.heartbeat = heartbeat
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.stopping = False
        self.node_messages: list[dict[str, Any]] = []  # sent on the node stream too (e.g. the Ingress table)

    # --- control ---
    def set_service(self, info: ServiceInfo, endpoints: list[Endpoint]) -> None:
        self.services[info.key] = (info, {e.name: e for e in endpoints})
        self._publish(Reset(info, tuple(endpoints)))

    def add(self, key: ServiceKey, *endpoints: Endpoint) -> None:
        self.services[key][1].update({e.name: e for e in endpoints})
        self._publish(Add(key, tuple(endpoints)))

    def remove(self, key: ServiceKey, *names: str) -> None:
        for n in names:
            self.services[key][1].pop(n, None)
        self._publish(Remove(key, tuple(names)))

    def delete(self, key: ServiceKey) -> None:
        self.services.pop(key, None)
        self._publish(DoesNotExist(key))

    def drop_streams(self) -> None:
        """End every open watch (as if the agent died); the sidecar must reconnect."""
        for q, _ in self.streams:
            q.put_nowait(None)

    def _publish(self, update: Update) -> None:
        data = update_to_json(update)
        key = update.service.key if isinstance(update, Reset) else update.service
        for q, only in self.streams:
            if only is None or only == key:
                q.put_nowait(data)

    # --- server ---
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/watch/endpoints", self._watch_all)
        app.router.add_get("/v1/namespaces/{ns}/endpoints/{name}", self._watch_one)
        app.router.add_post("/v1/drain", self._drain)
        app.router.add_get("/healthz", self._healthz)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.stopping = False
        self.runner = web.AppRunner(self.app(), handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        self.stopping = True  # a watch that arrives while the server closes ends at once
        self.drop_streams()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        self.drop_streams()  # one that began between the first drop and the close

    async def _stream(self, request: web.Request, first: list[dict[str, Any]], only: ServiceKey | None):
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        if self.stopping:
            return resp
        q: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        entry = (q, only)
        self.streams.append(entry)
        self.watchers += 1
        try:
            await resp.write(b"".join(json.dumps(d).encode() + b"\n" for d in first))
            while True:
                try:
                    item = await asyncio.wait_for(q.get(), self.heartbeat)
                except TimeoutError:
                    item = {"type": "Heartbeat"}
                if item is None:
                    break
                await resp.write(json.dumps(item).encode() + b"\n")
        finally:
            self.streams.remove(entry)
        return resp

    async def _watch_all(self, request: web.Request) -> web.StreamResponse:
        first = [update_to_json(Reset(info, tuple(eps.values()))) for info, eps in self.services.values()]
        first += self.node_messages
        first.append({"type": "Synced"})
        return await self._stream(request, first, None)

    async def _watch_one(self, request: web.Request) -> web.StreamResponse:
        key = ServiceKey(request.match_info["ns"], request.match_info["name"])
        if key in self.services:
            info, eps = self.services[key]
            first = [update_to_json(Reset(info, tuple(eps.values())))]
        else:
            first = [update_to_json(DoesNotExist(key))]
        return await self._stream(request, first, key)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _drain(self, request: web.Request) -> web.Response:
        self.drains.append(await request.json())
        self.drain_event.set()
        return web.json_response({"ok": True})


def generate(agent: FakeAgent, *, services: int, endpoints: int, port: int) -> None:
    """`services` Services x `endpoints` endpoints each (addresses 127.215.x.y; nothing listens there)."""
    for s in range(services):
        info = service(f"svc{s}", f"127.216.{s // 250}.{s % 250 + 1}", 80)
        eps = [endpoint(f"svc{s}-{e}", f"127.215.{s % 250}.{e % 250 + 1}", port) for e in range(endpoints)]
        agent.set_service(info, eps)


async def _main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--config", help="JSON: [{service: ServiceInfo JSON, endpoints: [Endpoint JSON]}]")
    p.add_argument("--generate", metavar="SERVICESxENDPOINTS")
    p.add_argument("--ingress", metavar="FILE", help="JSON: an Ingress table message for the node stream")
    args = p.parse_args()
    agent = FakeAgent()
    if args.ingress:
        with open(args.ingress) as f:  # noqa: ASYNC230 - start-up only
            agent.node_messages.append(json.load(f))
    if args.config:
        with open(args.config) as f:  # noqa: ASYNC230 - start-up only
            for item in json.load(f):
                agent.set_service(ServiceInfo.from_json(item["service"]),
                                  [Endpoint.from_json(e) for e in item["endpoints"]])  # fmt: skip
    if args.generate:
        s, e = args.generate.split("x")
        generate(agent, services=int(s), endpoints=int(e), port=8080)
    host, port = args.listen.rsplit(":", 1)
    url = await agent.start(host, int(port))
    print(url, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main())

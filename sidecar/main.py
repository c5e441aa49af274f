"""`meshd-sidecar`: the data-plane process (one per node serving every Service, or one beside an app)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import time

from meshd.model.endpoints import ServiceKey
from meshd.tasks import TaskGroup

from .discovery import DiscoveryClient, normalize_api
from .metrics import make_registry, serve_metrics
from .proxy import Listener, ProxyOptions, Route, sweep_idle
from .services import ServiceTable

log = logging.getLogger("meshd.sidecar")


def split_hostport(text: str, *, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """'ADDR:PORT', ':PORT', 'PORT' or '[v6]:PORT' -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        return default_host, int(text)
    host = host.strip("[]") or default_host
    return host, int(port)


class NodeListeners:
    """Node mode: one Listener per (Service address, port); follows the table as Services come and go.

    A bind failure (e.g. the address is not on an interface yet) is logged and retried; it never stops
    the other listeners.
    """

    def __init__(
        self, table: ServiceTable, *, options: ProxyOptions, reuse_port: bool, retry: float = 2.0
    ) -> None:
        self.table = table
        self.options = options
        self.reuse_port = reuse_port
        self.retry = retry
        self.listeners: dict[tuple[str, int], Listener] = {}
        self.failed: dict[tuple[str, int], str] = {}
        self.kick = asyncio.Event()
        self.stopping = TaskGroup("listeners")
        table.listeners.append(self.kick.set)

    def desired(self) -> dict[tuple[str, int], list[Route]]:
        want: dict[tuple[str, int], list[Route]] = {}
        for svc in self.table.services.values():
            info = svc.info
            if not svc.exists or info is None or not info.address:
                continue
            for p in info.ports:
                if p.protocol.upper() == "TCP":
                    want.setdefault((info.address, p.port), []).append(Route(svc, p.name))
        return want

    async def reconcile(self) -> None:
        want = self.desired()
        for key in [k for k in self.listeners if k not in want]:
            listener = self.listeners.pop(key)
            log.info("unbinding %s:%d", *key)
            self.stopping.spawn(listener.stop(), name=f"unbind {key[0]}:{key[1]}")
        for key in [k for k in self.failed if k not in want]:
            del self.failed[key]
        for key, routes in want.items():
            existing = self.listeners.get(key)
            if existing is not None:
                existing.set_routes(routes)
                continue
            listener = Listener(key[0], key[1], routes=routes, options=self.options)
            try:
                await listener.start(reuse_port=self.reuse_port, freebind=True)
            except OSError as e:
                if self.failed.get(key) != str(e):
                    log.warning("cannot listen on %s:%d for %s: %s (retrying)", key[0], key[1],
                                ", ".join(r.service.label for r in routes), e)  # fmt: skip
                self.failed[key] = str(e)
                continue
            self.failed.pop(key, None)
            self.listeners[key] = listener
            log.info("listening on %s:%d for %s", key[0], key[1], ", ".join(r.service.label for r in routes))

    async def run(self) -> None:
        while True:
            self.kick.clear()
            await self.reconcile()
            try:
                await asyncio.wait_for(self.kick.wait(), self.retry if self.failed else None)
            except TimeoutError:
                pass

    async def stop(self, grace: float) -> None:
        await asyncio.gather(*(listener.stop(grace) for listener in self.listeners.values()))
        await self.stopping.wait()


async def serve(args: argparse.Namespace, *, worker: int = 0) -> None:
    """Run one sidecar process until SIGTERM/SIGINT."""
    sidecar_id = args.id if args.workers <= 1 else f"{args.id}-w{worker}"
    only = ServiceKey.parse(args.service) if args.service else None
    table = ServiceTable(only=only)
    mhost, mport = split_hostport(args.metrics)
    discovery = DiscoveryClient(
        args.api, table, sidecar_id=sidecar_id, service=only if args.single_route else None,
        metrics=f"{mhost}:{mport + worker}",  # so the agent lists it for Prometheus
    )
    table._on_drained = discovery.drained
    options = ProxyOptions(fail_fast=args.fail_fast, connect_timeout=args.connect_timeout, zone=args.zone)
    reuse_port = args.workers > 1
    tasks = TaskGroup("sidecar")
    tasks.supervise("discovery", discovery.run)
    metrics_server = None
    try:
        metrics_server = await serve_metrics(make_registry(table), mhost, mport + worker)
    except OSError as e:
        log.error("cannot serve metrics on %s:%d: %s", mhost, mport + worker, e)
    node: NodeListeners | None = None
    single: Listener | None = None
    if args.listen:
        assert only is not None
        host, port = split_hostport(args.listen)
        single = Listener(host, port, routes=[Route(table.get(only), args.port_name)], options=options)
        try:
            await single.start(reuse_port=reuse_port)
        except OSError as e:
            log.error("cannot listen on %s:%d: %s", host, port, e)
            await tasks.close()
            raise SystemExit(1) from None
        log.info("listening on %s:%d for %s (api %s, id %s)", host, port, only, discovery.api, sidecar_id)
    else:
        node = NodeListeners(table, options=options, reuse_port=reuse_port)
        tasks.supervise("listeners", node.run)
        log.info("node mode: listening on every Service address (api %s, id %s)", discovery.api, sidecar_id)

    async def sweeper() -> None:
        while True:
            await asyncio.sleep(5)
            eps = [e for s in table.services.values() for e in s.endpoints.values()]
            sweep_idle(eps, now=time.monotonic(), idle_timeout=options.idle_timeout)

    tasks.supervise("idle sweeper", sweeper)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping: no new connections, finishing in-flight requests (up to %.0fs)", args.grace)

    def force() -> None:
        log.warning("second signal: exiting now")
        for task in asyncio.all_tasks():
            log.warning("pending: %r", task)
        os._exit(1)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, force)
    try:
        async with asyncio.timeout(args.grace + 5):
            if single is not None:
                await single.stop(args.grace)
            if node is not None:
                await node.stop(args.grace)
    except TimeoutError:
        log.error("listeners did not stop in time")
    if metrics_server is not None:
        metrics_server.close()
    for svc in table.services.values():
        for ep in list(svc.endpoints.values()) + list(svc.draining.values()):
            ep.close_idle()
    await tasks.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="meshd-sidecar", description=__doc__)
    p.add_argument("--api", default=os.environ.get("MESHD_API"), help="agent API: URL or host:port "
                   "(default $MESHD_API or http://127.0.0.1:7700)")  # fmt: skip
    p.add_argument("--listen", metavar="ADDR:PORT", help="serve one Service here (needs --service)")
    p.add_argument("--service", metavar="[NS/]NAME", help="the Service behind --listen")
    p.add_argument("--port-name", default=None, help="which Service port to reach (default: its first)")
    p.add_argument("--metrics", default="127.0.0.1:7701", metavar="ADDR:PORT", help="/metrics address")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the ports (SO_REUSEPORT)")
    p.add_argument("--id", default=f"{socket.gethostname()}-{os.getpid()}", help="sidecar id for drain acks")
    p.add_argument("--fail-fast", type=float, default=1.0, help="seconds to wait for a ready endpoint")
    p.add_argument("--connect-timeout", type=float, default=3.0)
    p.add_argument("--grace", type=float, default=10.0, help="seconds to finish in-flight requests on stop")
    p.add_argument("--zone", default="cluster.local")
    p.add_argument(
        "--single-route", action="store_true", help="with --service: watch only that Service's route"
    )
    p.add_argument("--log-level", default=os.environ.get("MESHD_LOG_LEVEL", "INFO"))
    args = p.parse_args(argv)
    args.api = normalize_api(args.api)
    if args.listen and not args.service:
        p.error("--listen needs --service")
    if args.workers < 1:
        p.error("--workers must be at least 1")
    return args


def _run(args: argparse.Namespace, worker: int = 0) -> None:
    try:
        import uvloop

        uvloop.run(serve(args, worker=worker))
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio still works
        asyncio.run(serve(args, worker=worker))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s sidecar[%(process)d] %(name)s: %(message)s",
    )
    if args.workers == 1:
        _run(args)
        return
    children: list[int] = []
    for i in range(args.workers):
        pid = os.fork()
        if pid == 0:
            try:
                _run(args, worker=i)
            finally:
                os._exit(0)
        children.append(pid)

    def forward(sig: int, _frame: object) -> None:
        for pid in children:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    for pid in children:
        while True:
            try:
                _, code = os.waitpid(pid, 0)
                status = status or os.waitstatus_to_exitcode(code)
                break
            except InterruptedError:
                continue
    sys.exit(status)


if __name__ == "__main__":
    main()

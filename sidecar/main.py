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
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from meshd.model.endpoints import ServiceKey
from meshd.tasks import TaskGroup, done_within

from . import compiled
from .discovery import DiscoveryClient, normalize_api
from .handover import FdServer
from .ingress.listener import IngressCollector, IngressServer
from .mesh.setup import add_arguments as add_mesh_arguments
from .mesh import connect as mesh_connect
from .mesh.setup import start_mesh
from .metrics import make_registry, serve_metrics
from .proxy import Listener, ProxyOptions, Route, sweep_idle
from .services import ServiceTable
from .udp import UdpListener

log = logging.getLogger("meshd.sidecar")


def split_hostport(text: str, *, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """'ADDR:PORT', ':PORT', 'PORT' or '[v6]:PORT' -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        return default_host, int(text)
    host = host.strip("[]") or default_host
    return host, int(port)


ListenKey = tuple[str, int, str]  # address, port, "TCP" or "UDP"


class NodeListeners:
    """Node mode: one listener per (Service address, port, protocol): a stream Listener for TCP ports, a
    UdpListener for UDP ones; follows the table as Services come and go.

    A bind failure (e.g. the address is not on an interface yet) is logged and retried; it never stops
    the other listeners.
    """

    def __init__(
        self, table: ServiceTable, *, options: ProxyOptions, reuse_port: bool, retry: float = 2.0,
        handover: FdServer | None = None, synced: asyncio.Event | None = None,
        on_failed: Callable[[ListenKey, list[str], str], None] | None = None,
    ) -> None:
        self.table = table
        self.handover = handover  # inherited sockets to adopt; every listening socket is handed to the agent
        self.synced = synced  # set once the Services are known: inherited sockets nobody wants are closed
        self.options = options
        self.reuse_port = reuse_port
        self.retry = retry
        self.on_failed = on_failed  # (key, its Services, the OS's error): told once per distinct error
        self.listeners: dict[ListenKey, Listener | UdpListener] = {}
        self.failed: dict[ListenKey, str] = {}
        self.kick = asyncio.Event()
        self.stopping = TaskGroup("listeners")
        table.listeners.append(self.kick.set)

    def desired(self) -> dict[ListenKey, list[Route]]:
        want: dict[ListenKey, list[Route]] = {}
        for svc in self.table.services.values():
            info = svc.info
            if not svc.exists or info is None:
                continue
            for e in info.external:  # LoadBalancer ports, nodePorts and hostPorts on the --external addresses
                want.setdefault((e.address, e.port, e.protocol.upper()), []).append(Route(svc, e.port_name))
            if not info.address:
                continue
            for p in info.ports:
                protocol = p.protocol.upper()
                if protocol in ("TCP", "UDP"):
                    want.setdefault((info.address, p.port, protocol), []).append(Route(svc, p.name))
        return want

    async def reconcile(self) -> None:
        want = self.desired()
        for key in [k for k in self.listeners if k not in want]:
            listener = self.listeners.pop(key)
            log.info("unbinding %s:%d/%s", *key)
            if self.handover is not None:
                self.handover.unregister(key)
            self.stopping.spawn(listener.stop(), name=f"unbind {key[0]}:{key[1]}")
        for key in [k for k in self.failed if k not in want]:
            del self.failed[key]
        for key, routes in want.items():
            existing = self.listeners.get(key)
            if existing is not None:
                existing.set_routes(routes)
                continue
            kind = UdpListener if key[2] == "UDP" else Listener
            listener = kind(key[0], key[1], routes=routes, options=self.options)
            inherited = self.handover.take(key) if self.handover is not None else None
            try:
                await listener.start(reuse_port=self.reuse_port, freebind=True, sock=inherited)
            except OSError as e:
                if self.failed.get(key) != str(e):
                    log.warning("cannot listen on %s:%d/%s for %s: %s (retrying)", *key,
                                ", ".join(r.service.label for r in routes), e)  # fmt: skip
                    if self.on_failed is not None:
                        self.on_failed(key, [r.service.label for r in routes], str(e))
                self.failed[key] = str(e)
                continue
            self.failed.pop(key, None)
            self.listeners[key] = listener
            if self.handover is not None and listener.sock is not None:
                self.handover.register(key, listener.sock)
            what = listener.protocol.value if isinstance(listener, Listener) else "udp"
            log.info("listening on %s:%d/%s (%s, %s) for %s", *key, what, "inherited" if inherited else "bound",
                     ", ".join(r.service.label for r in routes))  # fmt: skip
        if self.handover is not None and self.synced is not None and self.synced.is_set():
            self.handover.drop_unwanted(set(want))

    async def run(self) -> None:
        while True:
            self.kick.clear()
            await self.reconcile()
            pending = self.handover is not None and self.handover.inherited  # until the Services are known
            await done_within(self.kick.wait(), self.retry if self.failed else 0.2 if pending else None)

    async def stop(self, grace: float) -> None:
        if self.handover is not None:
            self.handover.close()
        await asyncio.gather(*(listener.stop(grace) for listener in self.listeners.values()))
        await self.stopping.wait()


def start_ingress(args: argparse.Namespace, table: ServiceTable, options: ProxyOptions,
                  discovery: DiscoveryClient, tasks: TaskGroup, registry: CollectorRegistry) -> IngressServer | None:
    """The Ingress's listeners (--ingress-http, --ingress-https), following the agent's Ingress table."""
    http = None if args.ingress_http in (None, "off") else split_hostport(args.ingress_http)
    https = None if args.ingress_https in (None, "off") else split_hostport(args.ingress_https)
    if http is None and https is None:
        return None
    server = IngressServer(table, options=options, http=http, https=https)
    discovery.on_ingress = server.update
    registry.register(IngressCollector(server))  # type: ignore[arg-type]
    tasks.spawn(server.run(), name="ingress listeners")
    return server


async def serve(args: argparse.Namespace, *, worker: int = 0) -> None:
    """Run one sidecar process until SIGTERM/SIGINT."""
    sidecar_id = args.id if args.workers <= 1 else f"{args.id}-w{worker}"
    only = ServiceKey.parse(args.service) if args.service else None
    table = ServiceTable(only=only, node=args.node)
    mhost, mport = split_hostport(args.metrics)
    discovery = DiscoveryClient(
        args.api, table, sidecar_id=sidecar_id, service=only if args.single_route else None,
        metrics=f"{mhost}:{mport + worker}",  # so the agent lists it for Prometheus
        token=args.token,
    )
    table._on_drained = discovery.drained
    options = ProxyOptions(
        fail_fast=args.fail_fast, connect_timeout=args.connect_timeout, zone=args.zone,
        header_timeout=args.header_timeout, client_idle_timeout=args.client_idle_timeout,
        max_header_bytes=args.max_header_bytes, max_headers=args.max_headers,
        max_connections=args.max_connections,
        detect_timeout=args.detect_timeout, tcp_idle_timeout=args.tcp_idle_timeout,
        udp_idle_timeout=args.udp_idle_timeout,
    )  # fmt: skip
    reuse_port = args.workers > 1
    tasks = TaskGroup("sidecar")
    metrics_server = None
    registry = make_registry(table)
    try:
        metrics_server = await serve_metrics(registry, mhost, mport + worker)
    except OSError as e:
        log.error("cannot serve metrics on %s:%d: %s", mhost, mport + worker, e)
    node: NodeListeners | None = None
    ingress: IngressServer | None = None
    single: Listener | None = None
    single_udp: list[UdpListener] = []

    def single_changed(listener: Listener, host: str, port: int) -> None:
        """--listen: the Service's port is known now (or changed): its protocol; a UDP port gets a
        UdpListener on the same address and port."""
        listener.set_routes(listener.routes)
        info = table.get(only).info  # type: ignore[arg-type]
        ports = [p for p in info.ports if args.port_name in (None, p.name)][:1] if info is not None else []
        if ports and ports[0].protocol.upper() == "UDP" and not single_udp:
            udp = UdpListener(host, port, routes=listener.routes, options=options)
            single_udp.append(udp)
            tasks.spawn(start_udp(udp), name=f"udp {host}:{port}")

    async def start_udp(udp: UdpListener) -> None:
        try:
            await udp.start(reuse_port=reuse_port)
            log.info("listening on %s:%d/udp for %s", udp.host, udp.port, only)
        except OSError as e:
            log.error("cannot listen on %s:%d/udp: %s", udp.host, udp.port, e)
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
        table.listeners.append(lambda: single_changed(single, host, port))  # the port's protocol, once known
    else:
        handover = FdServer.from_env() if args.workers == 1 else None
        if handover is not None:
            tasks.supervise("fd handover", handover.run)
        node = NodeListeners(table, options=options, reuse_port=reuse_port, handover=handover,
                             synced=discovery.synced, on_failed=lambda key, services, error:
                             discovery.listen_failed(*key, services, error))  # fmt: skip
        tasks.supervise("listeners", node.run)
        ingress = start_ingress(args, table, options, discovery, tasks, registry) if worker == 0 else None
        log.info("node mode: listening on every Service address (api %s, id %s)", discovery.api, sidecar_id)

    tasks.supervise("discovery", discovery.run)  # (after the Ingress set discovery.on_ingress: its watch asks)
    gateway = await start_mesh(args, table, tasks, reuse_port=reuse_port)

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
            for udp in single_udp:
                await udp.stop()
            if node is not None:
                await node.stop(args.grace)
            if ingress is not None:
                await ingress.stop(args.grace)
            if gateway is not None:
                await gateway.stop()
    except TimeoutError:
        log.error("listeners did not stop in time")
    if metrics_server is not None:
        metrics_server.close()
    for svc in table.services.values():
        for ep in list(svc.endpoints.values()) + list(svc.draining.values()):
            ep.close_idle()
    mesh_connect.WARM.close()
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
    p.add_argument("--node", default=os.environ.get("MESHD_NODE", ""), help="the node this sidecar runs on "
                   "(Services with trafficDistribution PreferClose prefer its endpoints)")
    p.add_argument("--fail-fast", type=float, default=1.0, help="seconds to wait for a ready endpoint")
    p.add_argument("--connect-timeout", type=float, default=3.0)
    p.add_argument("--grace", type=float, default=10.0, help="seconds to finish in-flight requests on stop")
    p.add_argument("--zone", default="cluster.local")
    bounds = ProxyOptions()
    p.add_argument("--header-timeout", type=float, default=bounds.header_timeout,
                   help="seconds a client has to send a whole request head (else 408 and close)")  # fmt: skip
    p.add_argument("--client-idle-timeout", type=float, default=bounds.client_idle_timeout,
                   help="seconds a keep-alive client connection may sit idle")  # fmt: skip
    p.add_argument("--max-header-bytes", type=int, default=bounds.max_header_bytes,
                   help="largest request head (request line and headers) in bytes (else 431)")  # fmt: skip
    p.add_argument("--max-headers", type=int, default=bounds.max_headers,
                   help="most header fields in a request (else 431)")  # fmt: skip
    p.add_argument("--max-connections", type=int, default=bounds.max_connections,
                   help="client connections per listening address; at the cap, accepting pauses")  # fmt: skip
    p.add_argument("--detect-timeout", type=float, default=0.3, metavar="SECONDS",
                   help="ports of undeclared protocol: how long to wait for a client's first bytes before "
                   "taking it for opaque TCP (a server that speaks first)")  # fmt: skip
    p.add_argument("--tcp-idle-timeout", type=float, default=3600.0, metavar="SECONDS",
                   help="close opaque TCP connections idle this long")  # fmt: skip
    p.add_argument("--udp-idle-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="forget UDP flows idle this long")  # fmt: skip
    p.add_argument(
        "--single-route", action="store_true", help="with --service: watch only that Service's route"
    )
    p.add_argument("--ingress-http", metavar="ADDR:PORT|off", default="off",
                   help="node mode: serve the Ingresses over plain HTTP here (the agent passes it)")  # fmt: skip
    p.add_argument("--ingress-https", metavar="ADDR:PORT|off", default="off",
                   help="node mode: serve the Ingresses over HTTPS here (the agent passes it)")  # fmt: skip
    add_mesh_arguments(p)
    p.add_argument("--log-level", default=os.environ.get("MESHD_LOG_LEVEL", "INFO"))
    p.add_argument("--token-file", metavar="PATH", help="the agent's API token (default: env MESHD_TOKEN; "
                   "never pass the token itself in argv, where `ps` shows it)")  # fmt: skip
    args = p.parse_args(argv)
    args.api = normalize_api(args.api)
    args.token = os.environ.get("MESHD_TOKEN", "").strip() or None
    if args.token_file:
        try:
            with open(args.token_file) as handle:
                args.token = handle.read().strip() or None
        except OSError as error:
            p.error(f"--token-file: {error}")
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
    log.info("hot path: %s", compiled.build)  # (compiled with mypyc, or why not: sidecar/compiled.py)
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

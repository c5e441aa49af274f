"""The sidecar's mesh flags and startup: its identity (`--mesh-dir`), the outbound connector, the gateway
(`--mesh-listen`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Any

from meshd.tasks import TaskGroup

from . import connect
from .gateway import MeshGateway, local_endpoints
from .identity import MeshIdentity

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mesh-dir", metavar="PATH", help="this node's mesh identity (ca.pem, node.pem, "
                   "node-key.pem, trust.json; the agent writes them): reach other nodes' pods over mutual TLS")
    p.add_argument("--mesh-listen", metavar="ADDR:PORT", help="serve the mesh gateway here (other nodes' "
                   "sidecars reach this node's pods through it; the agent passes its InternalIP:4143)")
    p.add_argument("--mesh-plaintext", action="store_true",
                   help="FOR THE BENCHMARK ONLY: the gateway path without TLS, to measure what TLS costs")


async def start_mesh(args: argparse.Namespace, table: Any, tasks: TaskGroup, *,
                     reuse_port: bool) -> MeshGateway | None:
    """The identity (polled), the connector's, and the gateway once it can listen (retried until then)."""
    if not (args.mesh_dir or args.mesh_plaintext):
        return None
    if args.mesh_plaintext:
        log.warning("--mesh-plaintext: traffic between nodes is NOT encrypted (benchmark only)")
    identity = MeshIdentity(Path(args.mesh_dir) if args.mesh_dir else None, plaintext=args.mesh_plaintext)
    fresh = await asyncio.to_thread(identity.read)
    if fresh is not None:
        identity.use(fresh)
    connect.configure(identity)
    tasks.supervise("mesh identity", identity.run)
    if not args.mesh_listen:
        return None
    host, _, port = args.mesh_listen.rpartition(":")
    gateway = MeshGateway(host.strip("[]") or "0.0.0.0", int(port), identity=identity,
                          allowed=local_endpoints(table))

    async def listen() -> None:
        failed = ""
        while True:
            try:
                await gateway.start(reuse_port=reuse_port)
                return
            except OSError as error:
                if str(error) != failed:
                    log.warning("cannot serve the mesh gateway on %s: %s (retrying)", args.mesh_listen, error)
                failed = str(error)
                await asyncio.sleep(2)

    tasks.spawn(listen(), name="mesh gateway")
    return gateway

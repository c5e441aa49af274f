"""Other nodes' pods as this node's endpoints: every agent follows the Pod objects of the shared store bound to
another node (spec.nodeName) and puts those with an address whose node is Ready into its registry, each carrying
its node and that node's mesh gateway (InternalIP and the `meshd.io/mesh-port` annotation), so this node's
sidecar reaches them over mutual TLS. A node that turns NotReady takes its pods' endpoints with it at once.
`remote_records` is the decision, pure; `RemoteEndpoints` follows the store and applies it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from meshd.cluster.nodes import is_ready, nodes_with_readiness
from meshd.cluster.pki import DEFAULT_MESH_PORT, MESH_PORT_ANNOTATION
from meshd.registry import PodRecord, Registry
from meshd.store.api import Store

log = logging.getLogger(__name__)

WATCHED = frozenset({"Pod", "Node", "Lease"})
Key = tuple[str, str]


def gateway_of(node: Mapping[str, Any]) -> str | None:
    """"InternalIP:mesh-port" of a Node, or None when it names no InternalIP."""
    addresses = (node.get("status") or {}).get("addresses") or []
    internal = next((a.get("address") for a in addresses if a.get("type") == "InternalIP" and a.get("address")),
                    None)
    if internal is None:
        return None
    annotation = ((node.get("metadata") or {}).get("annotations") or {}).get(MESH_PORT_ANNOTATION, "")
    port = int(annotation) if str(annotation).isdigit() and 0 < int(annotation) < 65536 else DEFAULT_MESH_PORT
    return f"[{internal}]:{port}" if ":" in internal else f"{internal}:{port}"


def pod_ready(pod: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def remote_records(pods: Iterable[Mapping[str, Any]], nodes: Iterable[Mapping[str, Any]], *,
                   own_node: str) -> dict[Key, PodRecord]:
    """The registry records of the pods bound to other Ready nodes that have an address (`nodes` with their
    Ready condition as the lease says, meshd.cluster.nodes.with_readiness)."""
    gateways = {str(n["metadata"]["name"]): gateway_of(n) for n in nodes if is_ready(n)}
    out: dict[Key, PodRecord] = {}
    for pod in pods:
        meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
        node = spec.get("nodeName") or ""
        gateway = gateways.get(node)
        if not node or node == own_node or not gateway or not status.get("podIP"):
            continue
        named = {str(p["name"]): int(p["containerPort"]) for c in spec.get("containers") or []
                 for p in c.get("ports") or [] if p.get("name") and p.get("containerPort")}
        ready = pod_ready(pod)
        namespace = str(meta.get("namespace") or "default")
        out[(namespace, str(meta["name"]))] = PodRecord(
            namespace=namespace, name=str(meta["name"]), labels=dict(meta.get("labels") or {}),
            address=str(status["podIP"]), named_ports=named, ready=ready,
            reason="" if ready else f"not ready on node {node}", hostname=str(spec.get("hostname") or ""),
            subdomain=str(spec.get("subdomain") or ""), terminating=bool(meta.get("deletionTimestamp")),
            node=node, gateway=gateway)
    return out


class RemoteEndpoints:
    """Keeps the registry's records of other nodes' pods in line with the store (run it supervised)."""

    def __init__(self, store: Store, registry: Registry, *, own_node: str, grace: float) -> None:
        self.store = store
        self.registry = registry
        self.own_node = own_node
        self.grace = grace
        self.known: dict[Key, PodRecord] = {}
        self._changed = asyncio.Event()

    def sync(self, now: float | None = None) -> None:
        nodes = nodes_with_readiness(self.store, grace=self.grace, now=time.time() if now is None else now)
        wanted = remote_records(self.store.list("Pod"), nodes, own_node=self.own_node)
        for key in [k for k in self.known if k not in wanted]:
            if self.registry.pod(*key) == self.known.pop(key):  # never a local pod that took the name since
                self.registry.delete_pod(*key)
        for key, record in wanted.items():
            current = self.registry.pod(*key)
            if current is not None and not current.gateway and key not in self.known:
                continue  # this node runs a pod of that name (moving here): the local one is the endpoint
            if self.known.get(key) != record or current != record:
                self.registry.upsert_pod(record)
                self.known[key] = record

    async def run(self) -> None:
        follower = asyncio.create_task(self._follow(), name="remote endpoints: follow the store")
        try:
            while True:
                self._changed.clear()
                self.sync()
                try:  # a lease ageing past the grace changes nothing in the store: look again meanwhile
                    async with asyncio.timeout(self.grace / 3):  # not wait_for: 3.11's may swallow a cancel
                        await self._changed.wait()
                except TimeoutError:
                    pass
                await asyncio.sleep(0.05)  # a burst of changes, one sync
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)

    async def _follow(self) -> None:
        from meshd.store import StoreError

        since = self.store.resource_version
        while True:
            try:
                async for event in self.store.watch(from_resource_version=since):
                    since = event.resource_version
                    if event.object.get("kind") in WATCHED:
                        self._changed.set()
            except StoreError:  # Expired: from now on (the periodic sync covers the gap)
                since = self.store.resource_version
                await asyncio.sleep(1)


__all__ = ["RemoteEndpoints", "gateway_of", "remote_records"]

"""Agents of a cluster find each other on the LAN over DNS-SD: each advertises `_meshd._tcp.local.` with TXT
`cluster=<id>`, `node=<name>` and `api=https://ADDR:PORT` (never the store's address: only a token holder
learns that, from the join endpoint); a joining agent browses for them.

`peer_from_properties`, `advertised_addresses` and `instance_name` are pure; `ClusterAdvertiser` and `browse`
are the zeroconf I/O (bound to the interfaces of --mdns, as meshd.mdns binds)."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

log = logging.getLogger(__name__)

SERVICE_TYPE = "_meshd._tcp.local."
Interfaces = Sequence[str] | Literal["all"]
_WILDCARD = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class Peer:
    """An agent of some cluster, as its advert says."""

    api: str  # https://ADDR:PORT
    cluster: str
    node: str


def _fit(label: str) -> str:
    """`label` if it fits one DNS label (63 bytes), else a prefix and a hash of the whole (as meshd.mdns does)."""
    if len(label.encode()) <= 63:
        return label
    return label.encode()[:54].decode(errors="ignore") + "~" + hashlib.sha1(label.encode()).hexdigest()[:8]


def host_label(node: str, address: str) -> str:
    """The SRV target's label: the node and the address, in letters, digits and hyphens."""
    text = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", f"{node}-{address}".lower())).strip("-")
    return _fit(text or "meshd")


def instance_name(node: str, cluster_id: str) -> str:
    """One DNS label: the node and the cluster (two clusters on one LAN may have a node of one name)."""
    return _fit(f"{node}@{cluster_id[:8]}")


def advertised_addresses(api_host: str, host_addresses: Sequence[str]) -> list[str]:
    """Where a joining node reaches the API: its own address, or for a wildcard every non-loopback IPv4
    address of the host (loopback only if there is nothing else)."""
    if api_host not in _WILDCARD:
        return [api_host]
    usable = [a for a in host_addresses if not ipaddress.ip_address(a).is_loopback]
    return usable or ["127.0.0.1"]


def loopback_only(api_host: str) -> bool:
    try:
        return ipaddress.ip_address(api_host).is_loopback
    except ValueError:
        return api_host == "localhost"


def advert_interfaces(api_host: str, interfaces: Interfaces) -> Interfaces:
    """Where to advertise: an API on loopback is reachable from this machine only, so it is advertised on
    127.0.0.1 only (another machine would read 127.0.0.1 as itself)."""
    if not loopback_only(api_host):
        return interfaces
    local = [] if interfaces == "all" else [a for a in interfaces if loopback_only(a)]
    return local or ["127.0.0.1"]


def peer_from_properties(properties: Mapping[bytes, bytes | None] | Mapping[str, str]) -> Peer | None:
    """The Peer in an advert's TXT record; None when it is not a meshd agent's advert."""
    text = {(k.decode("utf-8", "replace") if isinstance(k, bytes) else k):
            (v.decode("utf-8", "replace") if isinstance(v, bytes) else v or "") for k, v in properties.items()}
    api, cluster, node = text.get("api", ""), text.get("cluster", ""), text.get("node", "")
    if not api.startswith("https://") or not cluster or not node:
        return None
    return Peer(api, cluster, node)


def _open(interfaces: Interfaces) -> AsyncZeroconf:
    if interfaces == "all":
        return AsyncZeroconf(interfaces=InterfaceChoice.All, ip_version=IPVersion.V4Only)
    return AsyncZeroconf(interfaces=list(interfaces))


class ClusterAdvertiser:
    """This agent's `_meshd._tcp` advert, from start() until close() (goodbye packets at close)."""

    def __init__(self, *, interfaces: Interfaces, cluster_id: str, node: str, addresses: Sequence[str],
                 port: int) -> None:
        self.api = f"https://{addresses[0]}:{port}"
        self._interfaces = interfaces
        self._info = AsyncServiceInfo(
            SERVICE_TYPE, f"{instance_name(node, cluster_id)}.{SERVICE_TYPE}", port=port,
            properties={"cluster": cluster_id, "node": node, "api": self.api},
            server=f"{host_label(node, addresses[0])}.local.", parsed_addresses=list(addresses))
        self._zc: AsyncZeroconf | None = None

    async def start(self) -> None:
        """Registers the advert (zeroconf probes the name first, a second or two); best effort: a network
        that refuses it is logged, and joining nodes then need --server."""
        try:
            self._zc = _open(self._interfaces)
            await (await self._zc.async_register_service(self._info, allow_name_change=True))
        except Exception as error:  # noqa: BLE001 - the LAN may not allow multicast
            log.warning("DNS-SD: cannot advertise this agent (joining nodes need --server %s): %s", self.api, error)
            return
        log.info("DNS-SD: advertising this agent as %s (%s)", self._info.name, self.api)

    async def close(self) -> None:
        if self._zc is None:
            return
        zc, self._zc = self._zc, None
        try:
            await (await zc.async_unregister_service(self._info))
        except Exception as error:  # noqa: BLE001 - closing must go on
            log.warning("DNS-SD: withdrawing %s: %s", self._info.name, error)
        await zc.async_close()


async def browse(interfaces: Interfaces, *, resolve_timeout: float = 3.0) -> AsyncGenerator[Peer, None]:
    """Every meshd agent advertised on the LAN, as it is found (for as long as the caller reads)."""
    zc = _open(interfaces)
    names: asyncio.Queue[str] = asyncio.Queue()

    def changed(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
            names.put_nowait(name)

    browser = AsyncServiceBrowser(zc.zeroconf, [SERVICE_TYPE], handlers=[changed])
    seen: set[Peer] = set()
    try:
        while True:
            name = await names.get()
            info = AsyncServiceInfo(SERVICE_TYPE, name)
            if not await info.async_request(zc.zeroconf, int(resolve_timeout * 1000)):
                log.debug("DNS-SD: %s did not resolve", name)
                continue
            peer = peer_from_properties(info.properties)
            if peer is not None and peer not in seen:
                seen.add(peer)
                yield peer
    finally:
        await browser.async_cancel()
        await zc.async_close()


__all__ = ["SERVICE_TYPE", "ClusterAdvertiser", "Peer", "advert_interfaces", "advertised_addresses", "browse", "instance_name",
           "peer_from_properties"]

"""Service addresses (ClusterIPs): stable per Service name, allocated from a pool.

The first choice is a hash of namespace/name (`first_free`), so a Service gets the address it had while that is
free. The stored Service keeps its address (meshd.controller.clusterip); this in-memory allocator serves what has
no stored address: the agent's own pod resolver, and Services stored before addresses were.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Container

from meshd.model.endpoints import ServiceKey


class AddressPoolExhausted(Exception):
    pass


# .0 and .255 (some tools dislike them) and .254: an agent that cannot have the bridge gateway's DNS port gives
# its pods a resolver at an x.y.z.254 of this pool (agent.agent_resolver_address), never a Service's address
RESERVED_LAST_OCTETS = (0, 254, 255)


def first_free(pool: ipaddress.IPv4Network, key: ServiceKey, taken: Container[str]) -> str:
    """The first free address of `pool` from the hash of namespace/name on, skipping the reserved last octets."""
    size = pool.num_addresses
    start = int.from_bytes(hashlib.sha256(str(key).encode()).digest()[:4], "big")
    for step in range(size):
        offset = (start + step) % size
        address = str(pool.network_address + offset)
        if offset % 256 not in RESERVED_LAST_OCTETS and address not in taken:
            return address
    raise AddressPoolExhausted(f"range is full ({pool})")


class AddressAllocator:
    def __init__(self, pool: str) -> None:
        self.pool = ipaddress.IPv4Network(pool)
        self._by_key: dict[ServiceKey, str] = {}
        self._taken: dict[str, ServiceKey] = {}

    def allocate(self, key: ServiceKey, requested: str | None = None) -> str:
        """The Service's address: the one it has, the one it asks for, or its hash's first free address."""
        if key in self._by_key and requested in (None, self._by_key[key]):
            return self._by_key[key]
        if requested is not None:
            self.check(key, requested)
            self.release(key)
            return self._take(key, str(ipaddress.IPv4Address(requested)))
        return self._take(key, first_free(self.pool, key, self._taken))

    def check(self, key: ServiceKey, requested: str | None) -> None:
        """Raises ValueError when `allocate(key, requested)` would; allocates nothing."""
        if requested is None:
            return
        address = str(ipaddress.IPv4Address(requested))
        if ipaddress.IPv4Address(address) not in self.pool:
            raise ValueError(f"spec.clusterIP: {address} is not in the service range {self.pool}")
        owner = self._taken.get(address)
        if owner is not None and owner != key:
            raise ValueError(f"spec.clusterIP: {address} is already allocated to {owner}")

    def release(self, key: ServiceKey) -> None:
        address = self._by_key.pop(key, None)
        if address is not None:
            self._taken.pop(address, None)

    def _take(self, key: ServiceKey, address: str) -> str:
        self._by_key[key] = address
        self._taken[address] = key
        return address

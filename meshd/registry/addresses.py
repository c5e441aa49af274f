"""Service addresses (ClusterIPs): stable per Service name, allocated from a pool, without persistence.

The first choice is a hash of namespace/name, so a restarted agent gives every Service the address it had.
"""

from __future__ import annotations

import hashlib
import ipaddress

from meshd.model.endpoints import ServiceKey


class AddressPoolExhausted(Exception):
    pass


# .0 and .255 (some tools dislike them) and .254: an agent that cannot have the bridge gateway's DNS port gives
# its pods a resolver at an x.y.z.254 of this pool (agent.agent_resolver_address), never a Service's address
RESERVED_LAST_OCTETS = (0, 254, 255)


class AddressAllocator:
    def __init__(self, pool: str) -> None:
        self.pool = ipaddress.IPv4Network(pool)
        self._size = self.pool.num_addresses
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
        start = int.from_bytes(hashlib.sha256(str(key).encode()).digest()[:4], "big")
        for step in range(self._size):
            offset = (start + step) % self._size
            address = str(self.pool.network_address + offset)
            if offset % 256 in RESERVED_LAST_OCTETS or address in self._taken:
                continue
            return self._take(key, address)
        raise AddressPoolExhausted(f"no free Service address in {self.pool}")

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

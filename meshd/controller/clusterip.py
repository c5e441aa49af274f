"""A Service's address (spec.clusterIP), decided once when the Service is written and kept in the stored object,
as the API server allocates it at create time: every agent on a shared store publishes the address the store
holds, so DNS and the sidecars agree on every node.

Which address is taken is read from the store itself: every other Service's spec.clusterIP and every `IPAddress`
object (networking.k8s.io/v1, one per allocated address, named by it, as Kubernetes 1.33's allocator keeps
them). The IPAddress is created in the same store transaction as its Service, so of two agents choosing one
address at once the second gets AlreadyExists on it and chooses again (`is_address_race`). Pure decisions."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from meshd.model.endpoints import ServiceKey
from meshd.model.objects import Service
from meshd.registry.addresses import AddressPoolExhausted, first_free
from meshd.store import AlreadyExists, Create, Delete, Operation, Store

IP_ADDRESS_KIND = "IPAddress"
MANAGED_BY = "ipaddress.kubernetes.io/managed-by"


class ClusterIPError(ValueError):
    """A clusterIP the Service may not have; the message is the API server's, after `spec.clusterIP: `."""


def choose_cluster_ip(key: ServiceKey, *, requested: str | None, current: str | None,
                      taken: Mapping[str, ServiceKey], pool: ipaddress.IPv4Network) -> str:
    """The address a (non-headless) Service gets: the one it has (immutable once set, as in Kubernetes), the one
    it asks for when free and in `pool`, else the first free one. `taken`: address -> owner, this Service's own
    entries included or not."""
    if current is not None:
        if requested is not None and _normal(requested) != current:
            raise ClusterIPError(f'Invalid value: "{requested}": field is immutable')
        return current
    if requested is None:
        try:
            return first_free(pool, key, _HeldByOthers(taken, key))
        except AddressPoolExhausted as error:
            raise ClusterIPError(f"Internal error: failed to allocate a serviceIP: {error}") from None
    address = _normal(requested)
    if ipaddress.IPv4Address(address) not in pool:
        raise ClusterIPError(f'Invalid value: "{address}": provided IP is not in the valid range. '
                             f"The range of valid IPs is {pool}")
    owner = taken.get(address)
    if owner is not None and owner != key:
        raise ClusterIPError(f'Invalid value: "{address}": provided IP is already allocated')
    return address


class _HeldByOthers:
    """`address in this`: another Service than `key` holds it (a view: no copy of a big map per Service)."""

    def __init__(self, taken: Mapping[str, ServiceKey], key: ServiceKey) -> None:
        self._taken, self._key = taken, key

    def __contains__(self, address: object) -> bool:
        owner = self._taken.get(address) if isinstance(address, str) else None
        return owner is not None and owner != self._key


def stored_addresses(objects: Iterable[Mapping[str, Any]]) -> dict[str, ServiceKey]:
    """address -> owner of every address the store holds: Services' spec.clusterIP and IPAddress objects."""
    taken: dict[str, ServiceKey] = {}
    for obj in objects:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        if obj.get("kind") == "Service":
            address = spec.get("clusterIP")
            if isinstance(address, str) and address not in ("", "None"):
                taken[address] = ServiceKey(str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        elif obj.get("kind") == IP_ADDRESS_KIND:
            parent = spec.get("parentRef") or {}
            taken.setdefault(str(meta.get("name")), ServiceKey(str(parent.get("namespace") or ""),
                                                               str(parent.get("name") or "")))
    return taken


def ip_address_object(address: str, owner: ServiceKey) -> dict[str, Any]:
    """The IPAddress that holds `address` for `owner`, as Kubernetes' allocator writes it."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": IP_ADDRESS_KIND,
            "metadata": {"name": address, "namespace": "", "labels": {MANAGED_BY: "meshd"}},
            "spec": {"parentRef": {"group": "", "resource": "services", "namespace": owner.namespace,
                                   "name": owner.name}}}


def address_releases(ip_addresses: Iterable[Mapping[str, Any]], owners: Iterable[ServiceKey], *,
                     keep: Mapping[ServiceKey, str | None] | None = None) -> list[Operation]:
    """Deletes of the IPAddress objects these Services hold, but for the address each keeps (`keep`)."""
    wanted = set(owners)
    kept = keep or {}
    releases: list[Operation] = []
    for obj in ip_addresses:
        [owner] = stored_addresses([obj]).values()
        name = str(obj["metadata"]["name"])
        if owner in wanted and kept.get(owner) != name:
            releases.append(Delete(IP_ADDRESS_KIND, "", name))
    return releases


def with_cluster_ip(service: Service, address: str) -> Service:
    """The Service as stored: its spec.clusterIP set to `address`."""
    raw = dict(service.raw)
    raw["spec"] = {**(raw.get("spec") or {}), "clusterIP": address}
    return dataclasses.replace(service, cluster_ip=address, raw=raw)


class AddressPlan:
    """The Service addresses of one store write: `assign` each Service written (in order), then add
    `operations()` to the write, so the addresses are taken with the Services or not at all."""

    def __init__(self, store: Store, pool: ipaddress.IPv4Network, *,
                 published: Mapping[str, ServiceKey] | None = None) -> None:
        """`published`: addresses this agent serves without a stored one (Services stored before addresses were)."""
        self._store, self.pool = store, pool
        self._held = store.list(IP_ADDRESS_KIND)
        self.taken = {**(published or {}), **stored_addresses([*store.list("Service"), *self._held])}
        self._owned: dict[ServiceKey, set[str]] = {}
        for address, owner in self.taken.items():
            self._owned.setdefault(owner, set()).add(address)
        self._chosen: dict[ServiceKey, str | None] = {}

    def assign(self, service: Service, *, current: str | None) -> Service:
        """`service` with the address it gets (ClusterIPError if it may not have the one it asks for)."""
        key = ServiceKey(service.metadata.namespace, service.metadata.name)
        address = None if not service.has_address else choose_cluster_ip(
            key, requested=service.cluster_ip, current=current, taken=self.taken, pool=self.pool)
        for held in self._owned.pop(key, ()):
            del self.taken[held]
        self._chosen[key] = address
        if address is None:
            return service
        self.taken[address] = key
        self._owned[key] = {address}
        return with_cluster_ip(service, address)

    def operations(self) -> list[Operation]:
        """Creates of the IPAddress objects the chosen addresses need; deletes of those no longer held."""
        creates: list[Operation] = [Create(ip_address_object(address, key)) for key, address in self._chosen.items()
                                    if address is not None and self._store.get(IP_ADDRESS_KIND, "", address) is None]
        return creates + address_releases(self._held, self._chosen, keep=self._chosen)


def is_address_race(error: AlreadyExists) -> bool:
    """Whether a refused write lost an address to another agent's (the caller chooses again)."""
    return str(error).startswith(f'{IP_ADDRESS_KIND} "')


def _normal(address: str) -> str:
    return str(ipaddress.IPv4Address(address))


__all__ = ["IP_ADDRESS_KIND", "AddressPlan", "ClusterIPError", "address_releases", "choose_cluster_ip",
           "ip_address_object", "is_address_race", "stored_addresses", "with_cluster_ip"]

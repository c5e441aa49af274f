"""Stored Services whose address is another host slot's get one of this agent's range (meshd.hostslots).

An agent keeps the slot recorded in its state dir while it is free; restarted while another agent holds it, it
takes another slot, and its stored Services would keep addresses of the old slot's range, which the slot's new
owner hands out and serves: two agents on one range, and the second to bind meets "Address already in use". So
before the stored Services are published, each one whose clusterIP lies in another slot's share of the driver's
Service pool gets a new address of this agent's range (its hash's first free one, as at create), written in one
store transaction with its IPAddress objects, as the API server's allocator would. An address this agent's range
holds, or one outside every slot's share (a range chosen with --service-cluster-ip-range, an address older than
slots), is kept. A cluster's range is cluster-wide (meshd.cluster.servicerange): never re-addressed here.
`readdress_plan` decides (pure); `readdress_services` reads the store, writes, and says so in the log."""

from __future__ import annotations

import copy
import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshd.controller.clusterip import (
    IP_ADDRESS_KIND,
    ClusterIPError,
    address_releases,
    choose_cluster_ip,
    ip_address_object,
    stored_addresses,
)
from meshd.hostslots import SlotError, slot_of_address
from meshd.model.endpoints import ServiceKey
from meshd.store import Create, Operation, Store, Update

log = logging.getLogger(__name__)


class ReaddressError(SlotError):
    """The Services holding another slot's addresses cannot all have one of this agent's range."""


@dataclass(frozen=True)
class AddressMove:
    """A stored Service whose address (`old`, of host slot `slot`) is replaced by `new`."""

    key: ServiceKey
    old: str
    new: str
    slot: int


def foreign_slot(address: str, *, pool: ipaddress.IPv4Network, slot_pool: ipaddress.IPv4Network,
                 slot: int) -> int | None:
    """The other host slot whose share of `slot_pool` holds `address` (the Service must move), or None: kept when
    in `pool` (what this agent hands out), in this agent's own share, outside every share, or not an address."""
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        return None  # "None" (headless), "", garbage: nothing to move
    if ip in pool:
        return None
    owner = slot_of_address(address, str(slot_pool))
    return owner if owner is not None and owner != slot else None


def readdress_plan(services: Iterable[Mapping[str, Any]], ip_addresses: Sequence[Mapping[str, Any]], *,
                   pool: ipaddress.IPv4Network, slot_pool: ipaddress.IPv4Network,
                   slot: int) -> tuple[list[AddressMove], list[Operation]]:
    """The moves and the one transaction that makes them: each Service holding another slot's address updated to
    its hash's first free address of `pool`, the IPAddress of the new one created, the old one's deleted.
    ReaddressError when `pool` has no free address left for one. Pure."""
    services = list(services)
    taken = stored_addresses([*services, *ip_addresses])
    moves: list[AddressMove] = []
    operations: list[Operation] = []
    for obj in services:
        address = str((obj.get("spec") or {}).get("clusterIP") or "")
        other = foreign_slot(address, pool=pool, slot_pool=slot_pool, slot=slot)
        if other is None:
            continue
        meta = obj.get("metadata") or {}
        key = ServiceKey(str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        try:
            new = choose_cluster_ip(key, requested=None, current=None, taken=taken, pool=pool)
        except ClusterIPError as error:
            raise ReaddressError(f"Service {key.namespace}/{key.name} has the address {address} of host slot "
                                 f"{other}, which another agent holds, and cannot have one of this agent's range "
                                 f"{pool}: {error}") from None
        if taken.get(address) == key:
            del taken[address]
        taken[new] = key
        moves.append(AddressMove(key, address, new, other))
        operations.append(Update(with_address(obj, new)))
        if not any(str((ip.get("metadata") or {}).get("name")) == new for ip in ip_addresses):
            operations.append(Create(ip_address_object(new, key)))
    operations += address_releases(ip_addresses, [m.key for m in moves], keep={m.key: m.new for m in moves})
    return moves, operations


def with_address(obj: Mapping[str, Any], address: str) -> dict[str, Any]:
    """The stored Service with spec.clusterIP (and clusterIPs, when kept) set to `address`; the resourceVersion is
    kept, so the write is refused if the object changed meanwhile."""
    raw = copy.deepcopy(dict(obj))
    spec = raw.setdefault("spec", {})
    spec["clusterIP"] = address
    if "clusterIPs" in spec:
        spec["clusterIPs"] = [address]
    return raw


async def readdress_services(store: Store, *, pool: ipaddress.IPv4Network, slot_pool: ipaddress.IPv4Network,
                             slot: int, record: Callable[..., None] | None = None) -> list[AddressMove]:
    """Gives the stored Services holding another slot's addresses one of `pool` (ReaddressError if it cannot,
    StoreError if the write fails); each move is said in the log and, with `record` (EventLog.record), in a
    Warning Event on the Service (`kubectl describe service`)."""
    moves, operations = readdress_plan(store.list("Service"), store.list(IP_ADDRESS_KIND), pool=pool,
                                       slot_pool=slot_pool, slot=slot)
    if not moves:
        return []
    await store.transaction(operations)
    for move in moves:
        log.warning("Service %s/%s: its address %s is of host slot %d, which another agent holds (this agent holds "
                    "slot %d now): re-addressed to %s of this agent's range %s", move.key.namespace, move.key.name,
                    move.old, move.slot, slot, move.new, pool)
        if record is not None:
            record("Service", move.key.namespace, move.key.name, "Warning", "ClusterIPChanged",
                   f"clusterIP {move.old} is of host slot {move.slot}, which another meshd agent on this host holds: "
                   f"changed to {move.new} of this agent's range {pool} (slot {slot})")
    return moves


__all__ = ["AddressMove", "ReaddressError", "foreign_slot", "readdress_plan", "readdress_services", "with_address"]

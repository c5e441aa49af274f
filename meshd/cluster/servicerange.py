"""The cluster's one Service address range (kube-apiserver's `--service-cluster-ip-range`): decided once, by the
first agent of the cluster, and kept in the shared store as a `ServiceCIDR` named "kubernetes" (networking.k8s.io/v1,
as Kubernetes 1.33 keeps its default range), so every agent, whatever its driver, allocates and serves Service
addresses from the same range. A create-if-absent write: of two agents starting at once, one range wins.

An agent given the flag while the cluster has another range is refused (a clear error, nothing changed); an agent
given none takes the cluster's. Each driver makes the addresses reachable on its node (meshd.agent)."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from meshd.store import AlreadyExists, Create, Store, StoreError

log = logging.getLogger(__name__)

SERVICE_CIDR_KIND = "ServiceCIDR"
SERVICE_CIDR_NAME = "kubernetes"
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
DOCKER_BRIDGE = ipaddress.IPv4Network("10.213.0.0/16")  # the Docker driver's pod subnet (its gateway routes it)
WIDEST, NARROWEST = 12, 28  # kube-apiserver refuses wider than /12; below /28 hardly a Service fits


class ServiceRangeError(ValueError):
    """A range the cluster cannot use, or one that disagrees with the cluster's; the message says why."""


def parse_service_range(text: str) -> ipaddress.IPv4Network:
    """An IPv4 CIDR a cluster can hand Service addresses out of (host bits must be zero, as the API server's)."""
    try:
        network = ipaddress.IPv4Network(text.strip(), strict=True)
    except ValueError as error:
        raise ServiceRangeError(f"--service-cluster-ip-range {text!r}: not an IPv4 CIDR ({error})") from None
    if not WIDEST <= network.prefixlen <= NARROWEST:
        raise ServiceRangeError(f"--service-cluster-ip-range {network}: the prefix must be /{WIDEST} to "
                                f"/{NARROWEST}")
    if network.overlaps(DOCKER_BRIDGE):
        raise ServiceRangeError(f"--service-cluster-ip-range {network} overlaps the Docker driver's pod network "
                                f"{DOCKER_BRIDGE}")
    if not (network.is_private or network.subnet_of(LOOPBACK)) or network.is_multicast or network.is_link_local:
        raise ServiceRangeError(f"--service-cluster-ip-range {network}: use a private range (10/8, 172.16/12, "
                                f"192.168/16) or, for a cluster of process-driver nodes only, 127/8")
    return network


def service_cidr_object(network: ipaddress.IPv4Network) -> dict[str, Any]:
    """The stored range, as Kubernetes keeps its default ServiceCIDR."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": SERVICE_CIDR_KIND,
            "metadata": {"name": SERVICE_CIDR_NAME, "namespace": "", "labels": {"app.kubernetes.io/managed-by": "meshd"}},
            "spec": {"cidrs": [str(network)]}}


def range_of(obj: Mapping[str, Any]) -> ipaddress.IPv4Network:
    """The IPv4 range a stored ServiceCIDR holds; ServiceRangeError when it holds none usable."""
    cidrs = (obj.get("spec") or {}).get("cidrs") or []
    for cidr in cidrs if isinstance(cidrs, list) else []:
        try:
            network = ipaddress.ip_network(str(cidr))
        except ValueError:
            continue
        if isinstance(network, ipaddress.IPv4Network):
            return network
    raise ServiceRangeError(f"the cluster's ServiceCIDR {SERVICE_CIDR_NAME!r} holds no IPv4 range: {cidrs!r}")


def decide_range(stored: Mapping[str, Any] | None, *, wanted: ipaddress.IPv4Network | None,
                 default: ipaddress.IPv4Network) -> tuple[ipaddress.IPv4Network, bool]:
    """(the range this agent uses, whether it must be written): the cluster's when it has one (the flag, when
    given, must agree), else the flag's or the default."""
    if stored is None:
        return wanted or default, True
    network = range_of(stored)
    if wanted is not None and wanted != network:
        raise ServiceRangeError(f"--service-cluster-ip-range {wanted}: the cluster's Service range is {network} "
                                f"(decided when it was created); start this agent without the flag or with it")
    return network, False


async def ensure_service_range(store: Store, *, wanted: ipaddress.IPv4Network | None,
                               default: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    """The cluster's Service range, written first if the cluster has none (StoreError if unreachable)."""
    for _ in range(3):
        stored = store.get(SERVICE_CIDR_KIND, "", SERVICE_CIDR_NAME)
        network, write = decide_range(stored, wanted=wanted, default=default)
        if not write:
            return network
        try:
            await store.transaction([Create(service_cidr_object(network))])
        except AlreadyExists:  # another agent decided it first: the cluster's is theirs
            continue
        log.info("the cluster's Service range is %s (ServiceCIDR %s)", network, SERVICE_CIDR_NAME)
        return network
    raise StoreError("the cluster's Service range was written by another agent but cannot be read yet")


async def cluster_service_range(store: Store, *, flag: str | None, default: str,
                                driver: str) -> ipaddress.IPv4Network:
    """The range an agent on `driver` uses in the cluster: ensure_service_range with the flag (if given) and the
    default, a driver that cannot serve it said in the log."""
    network = await ensure_service_range(store, wanted=parse_service_range(flag) if flag else None,
                                         default=ipaddress.IPv4Network(default))
    if problem := driver_problem(network, driver):
        log.warning("%s", problem)
    log.info("Service addresses from the cluster's range %s", network)
    return network


def driver_problem(network: ipaddress.IPv4Network, driver: str) -> str | None:
    """Why `driver`'s pods cannot reach Service addresses of `network` on this node, or None."""
    if driver == "docker" and network.subnet_of(LOOPBACK):
        return (f"the cluster's Service range {network} is on loopback: containers on this Docker node cannot reach "
                f"Service addresses (create the cluster with a private --service-cluster-ip-range, e.g. 10.96.0.0/16)")
    return None


def stale_range_addresses(present: Iterable[str], network: ipaddress.IPv4Network, *, mine: set[str],
                          listening: frozenset[str]) -> list[str]:
    """The addresses of the cluster's range on this node's link that no Service of the cluster has any more and
    no listener serves (left by an agent that died): to remove. Addresses outside the range are left alone."""
    return [a for a in present if ipaddress.IPv4Address(a) in network and a not in mine and a not in listening]


__all__ = ["SERVICE_CIDR_KIND", "SERVICE_CIDR_NAME", "ServiceRangeError", "cluster_service_range", "decide_range",
           "driver_problem", "ensure_service_range", "parse_service_range", "range_of", "service_cidr_object",
           "stale_range_addresses"]

"""The test LAN's choice of subnet (tests/integration/netns_support.py): a /24 in 10.0.0.0/8 that no route on
the machine overlaps, nor meshd's own Docker range."""

from __future__ import annotations

import ipaddress
import random

import pytest

from tests.integration.netns_support import pick_subnet

ROUTES = ["default via 192.0.2.1 dev eth0", "10.0.0.0/9 dev mbaaaa proto kernel scope link src 10.0.0.1",
          "10.200.0.0/16 via 10.0.0.2 dev mbaaaa", "172.17.0.0/16 dev docker0 proto kernel scope link",
          "local 10.130.5.1 dev lo table local proto kernel scope host src 10.130.5.1", "", "broadcast"]


@pytest.mark.parametrize("seed", range(10))
def test_a_subnet_no_route_overlaps(seed: int) -> None:
    subnet = pick_subnet(ROUTES, random.Random(seed))
    assert subnet.prefixlen == 24 and subnet.subnet_of(ipaddress.IPv4Network("10.0.0.0/8"))
    for taken in ("10.0.0.0/9", "10.200.0.0/16", "10.213.0.0/16"):
        assert not subnet.overlaps(ipaddress.IPv4Network(taken))


def test_a_full_range_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="no free /24"):
        pick_subnet(["10.0.0.0/8 dev x"], random.Random(1))


def test_local_and_broadcast_routes_count_too() -> None:
    free = ipaddress.IPv4Network("10.130.5.0/24")
    rest = [f"{n} dev mbx" for n in ipaddress.IPv4Network("10.0.0.0/8").address_exclude(free)]
    assert pick_subnet(rest, random.Random(1)) == free
    with pytest.raises(RuntimeError):
        pick_subnet([*rest, "local 10.130.5.1 dev mby table local proto kernel scope host src 10.130.5.1"],
                    random.Random(1))

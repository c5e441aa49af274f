"""mDNS/DNS-SD: the node's Services advertised on the LAN (see `adverts` for the naming choices)."""

from __future__ import annotations

import ipaddress

from meshd.mdns.advertiser import MdnsAdvertiser
from meshd.mdns.adverts import Advert, AdvertChanges, desired_adverts, plan_changes, service_type

__all__ = [
    "Advert",
    "AdvertChanges",
    "MdnsAdvertiser",
    "desired_adverts",
    "parse_mdns_option",
    "plan_changes",
    "service_type",
]


def parse_mdns_option(text: str) -> list[str] | str | None:
    """`--mdns` value -> interfaces for MdnsAdvertiser: "all" (also ""), a list of addresses, or None for "off"."""
    value = text.strip().lower()
    if value in ("off", "false", "no", "none"):
        return None
    if value in ("", "all", "on"):
        return "all"
    addresses = [part.strip() for part in text.split(",") if part.strip()]
    for address in addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ValueError(
                f"--mdns: {address!r} is not an IP address (expected ADDR[,ADDR], all or off)"
            ) from None
    return addresses

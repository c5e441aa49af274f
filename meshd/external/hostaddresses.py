"""This host's IPv4 interface addresses (the primary one of each interface): what `--external 0.0.0.0` means."""

from __future__ import annotations

import fcntl
import socket
import struct

SIOCGIFADDR = 0x8915


def host_ipv4_addresses() -> list[str]:
    """Each interface's IPv4 address (interfaces without one are skipped); [] where the ioctl is unavailable."""
    out: list[str] = []
    try:
        interfaces = socket.if_nameindex()
    except OSError:
        return out
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, name in interfaces:
            try:
                packed = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, struct.pack("256s", name[:15].encode()))
            except OSError:
                continue
            address = socket.inet_ntoa(packed[20:24])
            if address not in out:
                out.append(address)
    return out

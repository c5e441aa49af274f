"""The addresses TCP listeners of this network namespace are bound to (procfs): what a new pod address or a
reclaimed Service address must not be."""

from __future__ import annotations

import ipaddress


def listening_addresses(table: str = "/proc/net/tcp") -> frozenset[str]:
    """The IPv4 addresses some TCP listener is bound to (blocking: reads procfs)."""
    found = set()
    with open(table) as lines:
        next(lines, None)
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":  # LISTEN
                hex_address = fields[1].split(":")[0]
                found.add(str(ipaddress.IPv4Address(int.from_bytes(bytes.fromhex(hex_address), "little"))))
    return frozenset(found)

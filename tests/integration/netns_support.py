"""The plain parts of the network-namespace test hosts (netns_harness.py): whether they can be built here, the
choice of a free subnet (pure, table-tested), a port free on an address, running a command, waiting."""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from typing import Any

# what meshd itself uses in 10.0.0.0/8 (the Docker driver's bridge and Service pool): never a test LAN
RESERVED = (ipaddress.IPv4Network("10.213.0.0/16"),)
ROUTE_TYPES = {"unicast", "local", "broadcast", "multicast", "anycast", "unreachable", "blackhole", "prohibit",
               "throw", "nat"}


def usable() -> str:
    """Why test hosts cannot be built here ("" when they can): root, `ip`, etcd."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    if not os.access(shutil.which("etcd") or "/usr/bin/etcd", os.X_OK):
        return "etcd is not installed (Debian: apt-get install etcd-server)"
    return ""


def pick_subnet(routes: Iterable[str], rng: random.Random | None = None) -> ipaddress.IPv4Network:
    """A /24 in 10.0.0.0/8 that overlaps no destination in `routes` (lines of `ip -4 route`) nor RESERVED."""
    rng = rng or random.Random()
    ten = ipaddress.IPv4Network("10.0.0.0/8")
    blocked: set[int] = {0, 255 * 256 + 255}  # 10.0.0.0/24 and 10.255.255.0/24 (network, broadcast of 10/8)
    for network in [*RESERVED, *(_destination(line) for line in routes)]:
        if network is not None and network.overlaps(ten):
            low = max(int(network.network_address), int(ten.network_address)) - int(ten.network_address)
            high = min(int(network.broadcast_address), int(ten.broadcast_address)) - int(ten.network_address)
            blocked.update(range(low // 256, high // 256 + 1))
    free = [number for number in range(256 * 256) if number not in blocked]
    if not free:
        raise RuntimeError("no free /24 in 10.0.0.0/8 for a test LAN")
    number = rng.choice(free)
    return ipaddress.IPv4Network(f"10.{number // 256}.{number % 256}.0/24")


def _destination(line: str) -> ipaddress.IPv4Network | None:
    words = line.split()
    if words and words[0] in ROUTE_TYPES:  # `ip route show table all`: "local 10.1.2.3 dev ..."
        words = words[1:]
    if not words or words[0] == "default":
        return None
    try:
        return ipaddress.IPv4Network(words[0], strict=False)
    except ValueError:
        return None


def free_port_on(address: str, *, udp: bool = False) -> int:
    """A port free on `address` (TCP, or UDP with udp=True)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def sh(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {result.returncode}: {result.stderr.strip()}")
    return result


def wait_for(check: Callable[[], Any], *, timeout: float = 60.0, what: str = "condition",
             explain: Callable[[], str] = lambda: "", interval: float = 0.2) -> Any:
    """Polls `check` until it returns something truthy; fails naming `what`, the last value and explain()."""
    deadline = time.monotonic() + timeout
    value: Any = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:g}s (last: {value!r}){explain()}")


# A pod that answers with its name and node (the same script on both drivers: the host's python3 for the process
# driver, the image's for Docker)
NAMED_SERVER = """\
import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{os.environ['POD_NAME']} on {os.environ['NODE_NAME']}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((os.environ["POD_IP"], 8080), Handler).serve_forever()
"""


__all__ = ["NAMED_SERVER", "RESERVED", "free_port_on", "pick_subnet", "sh", "usable", "wait_for"]

"""How soon apps on the host resolve a new Service by name through /etc/hosts (`--host-names hosts`), beside the
agent's own DNS answering it, in one run: from the apply request to the name being in the hosts file (what
getent, curl and getaddrinfo read), and to the agent's DNS answering it; then the same for a delete.

It runs itself in a private mount namespace with a copy of /etc/hosts bind-mounted over it (needs root and
unshare), so the machine's own file is never touched; the agent uses the process driver (no Docker needed).

    python bench/hostnames_latency.py [--services 20] [--driver process|docker]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import api_headers, free_port, percentile


def dns_answers(server: tuple[str, int], name: str) -> bool:
    """True when the server answers an A query for `name` with at least one record."""
    query = struct.pack(">HHHHHH", 0x4D53, 0x0100, 1, 0, 0, 0)
    query += b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    query += struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1)
        sock.sendto(query, server)
        reply = sock.recv(4096)
    return struct.unpack(">H", reply[6:8])[0] > 0


def timed(start: float, check: Callable[[], bool], timeout: float = 10.0) -> float:
    while not check():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("benchmark condition not reached")
        time.sleep(0.001)
    return time.perf_counter() - start


def both(start: float, checks: dict[str, Callable[[], bool]], timeout: float = 10.0) -> dict[str, float]:
    """When each check first held, polled side by side from `start`."""
    seen: dict[str, float] = {}
    while len(seen) < len(checks):
        for what, check in checks.items():
            if what not in seen and check():
                seen[what] = time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"benchmark condition not reached: {set(checks) - set(seen)}")
        time.sleep(0.001)
    return seen


def named(hosts: Path, dns: tuple[str, int], fqdn: str, present: bool) -> dict[str, Callable[[], bool]]:
    return {
        "hosts": lambda: (f"\t{fqdn} " in hosts.read_text()) == present,
        "dns": lambda: dns_answers(dns, fqdn) == present,
    }


def request(api: str, path: str, *, state: Path, body: str | None = None, method: str = "POST") -> None:
    data = body.encode() if body is not None else None
    request = urllib.request.Request(api + path, data=data, method=method, headers=api_headers(state))
    urllib.request.urlopen(request, timeout=10).read()


def measure(args: argparse.Namespace, work: Path) -> None:
    api, dns = f"127.0.0.1:{free_port()}", ("127.0.0.1", free_port())
    with open(work / "agent.log", "wb") as log:
        agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "meshd.cli",
                "agent",
                "--driver",
                args.driver,
                "--host-names",
                "hosts",
                "--api",
                api,
                "--dns",
                f"{dns[0]}:{dns[1]}",
                "--state-dir",
                str(work / "state"),
                "--mdns",
                "off",
                "--agent-id",
                f"bench-hosts-{os.getpid()}",
                "--sidecar-metrics",
                f"127.0.0.1:{free_port()}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    base = f"http://{api}"
    try:
        timed(time.perf_counter(), lambda: _healthy(base), timeout=60)
        hosts = Path("/etc/hosts")
        rows: dict[str, list[float]] = {"hosts add": [], "dns add": [], "hosts delete": [], "dns delete": []}
        for i in range(args.services):
            name = f"bench{i}"
            fqdn = f"{name}.default.svc.cluster.local"
            service = (
                f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n"
                f"  ports: [{{port: 80, targetPort: 8080}}]\n"
            )
            start = time.perf_counter()
            request(base, "/v1/apply", state=work / "state", body=service)
            for what, seconds in both(start, named(hosts, dns, fqdn, True)).items():
                rows[f"{what} add"].append(seconds)
            time.sleep(0.3)  # past the coalescing interval, as a user's next command would be
            start = time.perf_counter()
            request(base, f"/api/v1/namespaces/default/services/{name}", state=work / "state", method="DELETE")
            for what, seconds in both(start, named(hosts, dns, fqdn, False)).items():
                rows[f"{what} delete"].append(seconds)
            time.sleep(0.3)
        print(f"{args.services} Services, driver {args.driver}: from the API request to ...")
        for what, values in rows.items():
            print(
                f"  {what:13s} median {statistics.median(values) * 1000:7.1f} ms   "
                f"p95 {percentile(values, 0.95) * 1000:7.1f} ms   max {max(values) * 1000:7.1f} ms"
            )
        for verb in ("add", "delete"):
            ratio = statistics.median(rows[f"hosts {verb}"]) / statistics.median(rows[f"dns {verb}"])
            print(f"  {verb}: hosts file / DNS, medians: {ratio:.2f}x")
    finally:
        agent.send_signal(signal.SIGINT)
        agent.wait(timeout=60)


def _healthy(base: str) -> bool:
    try:
        return urllib.request.urlopen(base + "/healthz", timeout=1).read() == b"ok"
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--driver", choices=["process", "docker"], default="process")
    args = parser.parse_args()
    if os.environ.get("MESHD_BENCH_IN_NAMESPACE") != "1":
        if shutil.which("unshare") is None:
            sys.exit("needs unshare (util-linux) and root: it works on a private copy of /etc/hosts")
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "hosts"
            shutil.copyfile("/etc/hosts", copy)
            env = dict(os.environ, MESHD_BENCH_IN_NAMESPACE="1", MESHD_BENCH_WORK=tmp)
            code = subprocess.call(
                [
                    "unshare",
                    "-m",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    'mount --bind "$0" /etc/hosts && exec "$@"',
                    str(copy),
                    sys.executable,
                    __file__,
                    *sys.argv[1:],
                ],
                env=env,
            )
            sys.exit(code)
    measure(args, Path(os.environ["MESHD_BENCH_WORK"]))


if __name__ == "__main__":
    main()

"""UDP across nodes on real test hosts (network namespaces on a bridge, each its own agent and node sidecar, one
Debian etcd: tests/integration/netns_harness.py; root only): a UDP Service whose two replicas are dnsmasq on
host1, queried side by side from host1 (its own sidecar, local endpoints: a UDP socket per flow) and from host0
(host0's sidecar, through host1's mesh gateway: one mutual-TLS stream per flow):

- new flows: one query per new client socket, each a new flow (across nodes: a TLS handshake each); the median
  and p90 round trip of `--queries` of them;
- steady flows: dnsperf (`-c 4` clients, so 4 flows) for `--seconds`, unthrottled: queries per second and the
  average latency; then at a fixed `--rate` for the latency at the same load.

`--rounds` interleaved rounds (same node, then across, each round), medians printed.

    python3 -m bench.udp_mesh_bench [--rounds 3] [--queries 200] [--seconds 10] [--rate 1000]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.netns_harness import TestLan, usable, wait_for  # noqa: E402
from tests.integration.test_netns_udp_mesh import MANIFEST, dig, dns_pods  # noqa: E402

NEW_FLOWS = """\
import json, socket, statistics, sys, time
address, count = sys.argv[1], int(sys.argv[2])
query = bytes.fromhex("1234010000010000000000000370 6f64 01 78 04 74657374 00 0010 0001".replace(" ", ""))
times = []
for _ in range(count):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        start = time.perf_counter()
        s.sendto(query, (address, 53))
        s.recvfrom(2048)
        times.append(time.perf_counter() - start)
times.sort()
print(json.dumps({"p50": statistics.median(times), "p90": times[int(len(times) * 0.9)]}))
"""


def dnsperf(lan: TestLan, i: int, address: str, queries: Path, seconds: int, rate: int = 0) -> dict[str, float]:
    args = ["dnsperf", "-s", address, "-p", "53", "-d", str(queries), "-l", str(seconds), "-c", "4", "-q", "64"]
    if rate:
        args += ["-Q", str(rate)]
    out = lan.run(i, *args, timeout=seconds + 60).stdout
    qps = re.search(r"Queries per second:\s+([\d.]+)", out)
    latency = re.search(r"Average Latency \(s\):\s+([\d.]+)", out)
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    if not (qps and latency and lost):
        raise RuntimeError(f"dnsperf on host{i}: {out}")
    return {"qps": float(qps.group(1)), "latency": float(latency.group(1)), "lost": float(lost.group(1))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if why := usable():
        sys.exit(why)
    for tool in ("dnsmasq", "dnsperf"):
        if shutil.which(tool) is None:
            sys.exit(f"needs {tool}")
    with tempfile.TemporaryDirectory(prefix="udp-mesh-bench-") as tmp, \
            TestLan(Path(tmp) / "lan", hosts_wanted=2, sidecar=True) as lan:
        names = {h.name for h in lan.hosts}
        wait_for(lambda: {n for n, node in lan.nodes(0).items() if node["ready"] == "True"} == names, timeout=90,
                 what="2 Ready nodes", explain=lan.explain)
        manifest, queries = Path(tmp) / "dns.yaml", Path(tmp) / "queries"
        manifest.write_text(MANIFEST.format(node="host1", dnsmasq=shutil.which("dnsmasq")))
        queries.write_text("pod.x.test TXT\n")
        out = lan.kubectl(0, "apply", "-f", str(manifest))
        if out.returncode:
            sys.exit(out.stderr)
        wait_for(lambda: len(dns_pods(lan)) == 2, timeout=120, what="2 Ready dns pods", explain=lan.explain)
        address = lan.kubectl(0, "get", "service", "dns", "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
        for i in (0, 1):
            wait_for(lambda i=i: dig(lan, i, address), timeout=60, what=f"dig on host{i}", explain=lan.explain)
        runs: dict[str, list[tuple[dict[str, float], dict[str, float], dict[str, float]]]] = {}
        for _ in range(args.rounds):
            for label, i in (("same node (host1)", 1), ("across nodes, mTLS (host0)", 0)):
                flows = json.loads(lan.run(i, sys.executable, "-c", NEW_FLOWS, address, str(args.queries),
                                           timeout=600).stdout)
                steady = dnsperf(lan, i, address, queries, args.seconds)
                paced = dnsperf(lan, i, address, queries, args.seconds, args.rate)
                runs.setdefault(label, []).append((flows, steady, paced))

        def median(label: str, part: int, key: str) -> float:
            return statistics.median(run[part][key] for run in runs[label])

        rows = {label: tuple({key: median(label, part, key) for key in runs[label][0][part]} for part in range(3))
                for label in runs}
        print(f"UDP Service, 2 dnsmasq replicas on host1; medians of {args.rounds} interleaved rounds: "
              f"{args.queries} new flows, dnsperf -c 4 for {args.seconds}s (unthrottled, then -Q {args.rate})")
        print(f"{'client':28} {'new flow p50':>13} {'p90':>9} {'queries/s':>10} {'avg lat':>9} {'lost':>5} "
              f"{'avg lat @' + str(args.rate):>13}")
        for label, (flows, steady, paced) in rows.items():
            print(f"{label:28} {flows['p50'] * 1e3:>10.2f} ms {flows['p90'] * 1e3:>6.2f} ms {steady['qps']:>10.0f} "
                  f"{steady['latency'] * 1e3:>6.2f} ms {steady['lost']:>5.0f} {paced['latency'] * 1e3:>10.2f} ms")
        local, remote = rows["same node (host1)"], rows["across nodes, mTLS (host0)"]
        print(f"across / same: queries/s {remote[1]['qps'] / local[1]['qps']:.2f}x, new flow p50 "
              f"+{(remote[0]['p50'] - local[0]['p50']) * 1e3:.2f} ms, latency at {args.rate}/s "
              f"+{(remote[2]['latency'] - local[2]['latency']) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()

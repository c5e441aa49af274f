"""What TLS with client certificates costs the agent↔etcd link, side by side in one run: two real etcd members
(Debian's etcd-server, started here on free ports), one plain HTTP, one TLS only with `--client-cert-auth`
(certificates made by openssl as the README makes them); on each, the latency of one write through
EtcdObjectStore (a Service created, one at a time, waiting for the watch to bring it back), and of opening
the store (connect + list: a new TLS session each time).

    python bench/store_tls_bench.py [--writes 300] [--opens 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentile
from meshd.store.etcd import open_etcd_store
from meshd.store.etcdtls import NO_TLS, StoreTls, client_context
from tests.integration.etcd_harness import EtcdCluster, EtcdPki


def service(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"port": 80}]}}


async def measure(etcd: EtcdCluster, tls: StoreTls, writes: int, opens: int) -> tuple[list[float], list[float]]:
    context = client_context(tls) if tls.given else None
    store = await open_etcd_store(etcd.endpoints, ssl_context=context, tls=tls)
    latencies = []
    try:
        for i in range(writes):
            start = time.perf_counter()
            await store.create(service(f"w-{i}"))
            latencies.append(time.perf_counter() - start)
    finally:
        await store.close()
    opened = []
    for _ in range(opens):
        start = time.perf_counter()
        store = await open_etcd_store(etcd.endpoints, ssl_context=context, tls=tls)
        opened.append(time.perf_counter() - start)
        await store.close()
    return latencies, opened


def line(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (f"{name:41} median {statistics.median(ms):6.2f} ms  p90 {percentile(ms, 0.9):6.2f} ms  "
            f"max {max(ms):6.2f} ms  (n={len(ms)})")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--opens", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshd-tls-bench-") as tmp:
        root = Path(tmp)
        pki = EtcdPki.make(root / "pki")
        plain = EtcdCluster(root / "plain").start()
        secure = EtcdCluster(root / "tls", tls=pki).start()
        try:
            tls = StoreTls(pki.path("ca.crt"), pki.path("client.crt"), pki.path("client.key"))
            results = {"plain http://": await measure(plain, NO_TLS, args.writes, args.opens),
                       "https:// + client certificate": await measure(secure, tls, args.writes, args.opens)}
        finally:
            plain.stop()
            secure.stop()
    for name, (latencies, _) in results.items():
        print(line(f"write, {name}", latencies))
    for name, (_, opened) in results.items():
        print(line(f"open store, {name}", opened))


if __name__ == "__main__":
    asyncio.run(main())

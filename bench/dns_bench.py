"""Benchmark: meshd's DNS server against dnsmasq, the same 100 names, both measured by dnsperf in one run.

    python bench/dns_bench.py [--duration 10] [--clients 4] [--rounds 1] [--udp reader|protocol|dgram] [--loop uvloop|asyncio]

Each server runs in its own process on 127.0.0.1 (meshd on its usual event loop: uvloop); dnsperf asks each for
the same A records for a fixed time, one server after the other. Prints queries per second, average latency,
lost queries, the server's CPU time per query and the ratios meshd/dnsmasq. `--udp` picks meshd's UDP path:
`reader` (the default: a reader callback draining the socket), `protocol` (an asyncio.DatagramProtocol) or
`dgram` (asyncio-dgram's `await recv()` per packet), to measure what each costs. Not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ZONE = "cluster.local"
GOAL_RATIO = 0.9
GOAL_QPS = 50_000


def names(count: int) -> list[tuple[str, str]]:
    """(name, address) of the benchmark's Services."""
    return [(f"svc-{i}.default.svc.{ZONE}", f"127.214.{i // 250}.{i % 250 + 1}") for i in range(count)]


# --- the meshd side (a child process) --------------------------------------------------------------------


async def serve_meshd(port: int, count: int, udp: str) -> None:
    from meshd.dns.server import DnsServer
    from meshd.model.endpoints import PortInfo, ServiceInfo, ServiceKey
    from meshd.registry.registry import Registry

    registry = Registry()
    for name, address in names(count):
        registry.upsert_service(
            ServiceInfo(ServiceKey("default", name.split(".")[0]), address, (PortInfo("http", 80, 80),))
        )
    if udp in ("reader", "protocol"):
        server = DnsServer(registry, zone=ZONE, listen=[("127.0.0.1", port)], udp=udp)
        await server.start()
    else:  # asyncio-dgram: one await per packet received and per packet sent
        import asyncio_dgram

        server = DnsServer(registry, zone=ZONE, listen=[])
        await server.start()
        stream = await asyncio_dgram.bind(("127.0.0.1", port))
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        responder = server.responder

        async def loop() -> None:
            while True:
                data, addr = await stream.recv()
                reply = responder.answer_udp(data)
                if reply is not None:
                    await stream.send(reply, addr)

        asyncio.get_running_loop().create_task(loop())
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


# --- running and measuring ----------------------------------------------------------------------------------


@dataclass
class Result:
    server: str
    qps: float
    sent: int
    completed: int
    lost: int
    avg_ms: float
    max_ms: float
    cpu_us: float = (
        0.0  # the server's CPU time (user + system) per completed query: robust to a noisy machine
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp.bind(("127.0.0.1", port))
        return port


def wait_answering(port: int, name: str, timeout: float = 10.0) -> None:
    import dns.message
    import dns.query

    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=0.5)
            if reply.answer:
                return
        except Exception:  # noqa: BLE001, S110 - not up yet
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"nothing answers {name} on port {port}")
        time.sleep(0.1)


def start_dnsmasq(port: int, count: int, workdir: Path) -> subprocess.Popen[bytes]:
    conf = workdir / "dnsmasq.conf"
    conf.write_text("".join(f"host-record={name},{address}\n" for name, address in names(count)))
    return subprocess.Popen(
        [
            shutil.which("dnsmasq") or "/usr/sbin/dnsmasq",
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            f"--port={port}",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--local-ttl=5",
            f"--conf-file={conf}",
            f"--pid-file={workdir / 'dnsmasq.pid'}",
            *(["--user=root"] if os.geteuid() == 0 else []),  # root: keep it, so it can read the conf file
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_meshd(port: int, count: int, *, loop: str, udp: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "serve",
            "--port",
            str(port),
            "--names",
            str(count),
            "--loop",
            loop,
            "--udp",
            udp,
        ],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != b"ready":
        raise SystemExit("meshd's DNS server did not start")
    return process


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(label: str, pid: int, port: int, datafile: Path, **options: float) -> Result:
    before = cpu_seconds(pid)
    result = dnsperf(label, port, datafile, **options)  # type: ignore[arg-type]
    result.cpu_us = (cpu_seconds(pid) - before) / max(1, result.completed) * 1e6
    return result


def dnsperf(label: str, port: int, datafile: Path, *, duration: float, clients: int, threads: int) -> Result:
    command = [
        "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(datafile), "-l", str(duration),
        "-c", str(clients), "-T", str(threads), "-q", "200", "-t", "2",
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, check=True).stdout

    def number(pattern: str) -> float:
        match = re.search(pattern, out)
        if match is None:
            raise SystemExit(f"dnsperf output without {pattern!r}:\n{out}")
        return float(match.group(1))

    return Result(
        server=label,
        qps=number(r"Queries per second:\s+([\d.]+)"),
        sent=int(number(r"Queries sent:\s+(\d+)")),
        completed=int(number(r"Queries completed:\s+(\d+)")),
        lost=int(number(r"Queries lost:\s+(\d+)")),
        avg_ms=number(r"Average Latency \(s\):\s+([\d.]+)") * 1000,
        max_ms=number(r"max ([\d.]+)\)") * 1000,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main_bench(args: argparse.Namespace) -> int:
    for tool in ("dnsperf", "dnsmasq"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is not installed")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="meshd-dns-bench-") as tmp:
        workdir = Path(tmp)
        datafile = workdir / "queries.txt"
        datafile.write_text("".join(f"{name} A\n" for name, _ in names(args.names)))
        dnsmasq_port, meshd_port = free_port(), free_port()
        dnsmasq = start_dnsmasq(dnsmasq_port, args.names, workdir)
        meshd = start_meshd(meshd_port, args.names, loop=args.loop, udp=args.udp)
        try:
            wait_answering(dnsmasq_port, names(args.names)[0][0])
            wait_answering(meshd_port, names(args.names)[0][0])
            label = f"meshd ({args.loop}, udp={args.udp})"
            for _ in range(args.rounds):
                for name, process, port in (("dnsmasq", dnsmasq, dnsmasq_port), (label, meshd, meshd_port)):
                    options = {"duration": args.duration, "clients": args.clients, "threads": args.threads}
                    results.append(measure(name, process.pid, port, datafile, **options))
        finally:
            stop(meshd)
            stop(dnsmasq)
    print(
        f"{args.names} names, {args.duration:g} s per run, dnsperf -c {args.clients} -T {args.threads} -q 200"
    )
    print(
        f"{'server':32} {'QPS':>9} {'avg ms':>7} {'max ms':>7} {'sent':>9} {'lost':>5} {'CPU us/query':>12}"
    )
    for r in results:
        print(
            f"{r.server:32} {r.qps:9.0f} {r.avg_ms:7.3f} {r.max_ms:7.2f} {r.sent:9d} {r.lost:5d} {r.cpu_us:12.2f}"
        )
    theirs = [r.qps for r in results if r.server == "dnsmasq"]
    ours = [r.qps for r in results if r.server != "dnsmasq"]
    ratio = (sum(ours) / len(ours)) / (sum(theirs) / len(theirs))
    cpu = (
        [r.cpu_us for r in results if r.server != "dnsmasq"],
        [r.cpu_us for r in results if r.server == "dnsmasq"],
    )
    print(f"server CPU per query meshd/dnsmasq: {sum(cpu[0]) / sum(cpu[1]):.2f}x (lower is better)")
    lost = sum(r.lost for r in results if r.server != "dnsmasq")
    met = ratio >= GOAL_RATIO and min(ours) >= GOAL_QPS and lost == 0
    print(f"ratio meshd/dnsmasq QPS: {ratio:.2f}x  (goal >= {GOAL_RATIO}x, >= {GOAL_QPS} QPS, 0 lost: "
          f"{'met' if met else 'missed'})")  # fmt: skip
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "serve"])
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds of dnsperf per server and round"
    )
    parser.add_argument("--clients", type=int, default=4, help="dnsperf clients (-c)")
    parser.add_argument("--threads", type=int, default=1, help="dnsperf threads (-T)")
    parser.add_argument("--rounds", type=int, default=1, help="alternate the servers this many times")
    parser.add_argument("--names", type=int, default=100)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--udp", choices=["reader", "protocol", "dgram"], default="reader")
    parser.add_argument("--port", type=int, default=0, help="(serve) the port to listen on")
    args = parser.parse_args()
    if args.mode == "serve":
        if args.loop == "uvloop":
            import uvloop

            uvloop.run(serve_meshd(args.port, args.names, args.udp))
        else:
            asyncio.run(serve_meshd(args.port, args.names, args.udp))
        return 0
    return main_bench(args)


if __name__ == "__main__":
    sys.exit(main())

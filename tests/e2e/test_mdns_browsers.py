"""Browsers the project didn't write see meshd's adverts on 127.0.0.1: Avahi (avahi-daemon + avahi-browse) and dig.

The test starts its own dbus-daemon and avahi-daemon, restricted to `lo`, so nothing touches the host's network.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from meshd.mdns.advertiser import MdnsAdvertiser
from meshd.model.endpoints import PortInfo, ServiceInfo, ServiceKey
from meshd.registry.endpoints import PodRecord
from meshd.registry.registry import Registry

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/>
  </policy>
</busconfig>
"""

AVAHI_CONF = """[server]
host-name=meshd-test-avahi
use-ipv4=yes
use-ipv6=no
allow-interfaces=lo
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
disable-publishing=yes
"""


def web_registry() -> Registry:
    registry = Registry(node="n1")
    registry.upsert_service(
        ServiceInfo(ServiceKey("default", "web"), "127.214.0.1", (PortInfo("http", 80, 8080),)),
        {"app": "web"},
    )
    return registry


def set_web_ready(registry: Registry, ready: bool) -> None:
    registry.upsert_pod(PodRecord("default", "web-1", {"app": "web"}, "127.213.0.2", ready=ready))


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def avahi(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A private system bus and an avahi-daemon on `lo`; yields the environment that reaches them."""
    for tool in ("dbus-daemon", "avahi-daemon", "avahi-browse"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install avahi-daemon avahi-utils dbus)")
    if os.geteuid() != 0:
        pytest.skip("avahi-daemon needs root for its pid file in /run/avahi-daemon")
    if subprocess.run(["avahi-daemon", "--check"], capture_output=True, check=False).returncode == 0:
        pytest.skip("an avahi-daemon already runs on this machine (one per host: its pid file is fixed)")
    socket = tmp_path / "bus.sock"
    (tmp_path / "bus.conf").write_text(BUS_CONF.format(socket=socket))
    (tmp_path / "avahi.conf").write_text(AVAHI_CONF)
    bus = subprocess.Popen(
        ["dbus-daemon", f"--config-file={tmp_path / 'bus.conf'}", "--nofork", "--print-address"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert bus.stdout is not None
    bus.stdout.readline()  # the address line: the bus is listening
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={socket}"}
    daemon = subprocess.Popen(
        ["avahi-daemon", "-f", str(tmp_path / "avahi.conf"), "--no-drop-root", "--no-chroot", "--no-rlimits"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert daemon.stdout is not None
        log = []
        for line in daemon.stdout:  # blocks until avahi is up or exits
            log.append(line)
            if "Server startup complete" in line:
                break
        else:
            pytest.skip(f"avahi-daemon did not start: {''.join(log)[-500:]}")
        yield env
    finally:
        stop(daemon)
        stop(bus)


def unescape(text: str) -> str:
    """avahi-browse -p escapes bytes in names as \\DDD (decimal)."""
    return re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1))), text)


async def browse_lines(env: dict[str, str]) -> AsyncIterator[list[str]]:
    process = await asyncio.create_subprocess_exec(
        "avahi-browse", "-p", "-k", "-r", "_http._tcp", env=env, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        while line := await process.stdout.readline():
            yield [unescape(field) for field in line.decode().rstrip("\n").split(";")]
    finally:
        process.terminate()
        await process.wait()


async def test_avahi_browse_sees_the_service_resolve_and_go(avahi: dict[str, str]) -> None:
    registry = web_registry()
    advertiser = MdnsAdvertiser(registry, interfaces=["127.0.0.1"], node_name="n1")
    await advertiser.start()
    lines = browse_lines(avahi)
    try:
        set_web_ready(registry, True)
        resolved = await asyncio.wait_for(_first(lines, "=", "web@default"), 30)
        # =;iface;proto;name;type;domain;host;address;port;txt
        assert resolved[4:9] == ["_http._tcp", "local", "n1-127-214-0-1.local", "127.214.0.1", "80"]
        txt = set(re.findall(r'"([^"]*)"', resolved[9]))
        assert {"namespace=default", "service=web", "port=http", "meshd=1"} <= txt

        set_web_ready(registry, False)  # goodbye packets: avahi drops it at once, not after the TTL
        await asyncio.wait_for(_first(lines, "-", "web@default"), 30)
    finally:
        await lines.aclose()
        await advertiser.close()


async def _first(lines: AsyncIterator[list[str]], kind: str, instance: str) -> list[str]:
    async for fields in lines:
        if fields[0] == kind and fields[3] == instance:
            return fields
    raise AssertionError("avahi-browse exited")


def dig(*args: str) -> str:
    return subprocess.run(
        ["dig", "+time=1", "+tries=1", "+noall", "+answer", "+additional", "-p", "5353", "@127.0.0.1", *args],
        capture_output=True,
        check=False,
        text=True,
        timeout=10,
    ).stdout


async def dig_until(predicate: Callable[[str], bool], *args: str, attempts: int = 20) -> str:
    """dig (a legacy unicast one-shot query, RFC 6762 5.1) until the answer satisfies `predicate`.

    Retried: another mDNS socket sharing port 5353 on this host (SO_REUSEPORT) may receive a unicast query.
    """
    out = ""
    for _ in range(attempts):
        out = await asyncio.to_thread(dig, *args)
        if predicate(out):
            return out
        await asyncio.sleep(0.25)
    raise AssertionError(f"dig {' '.join(args)}: last answer {out!r}")


@pytest.mark.skipif(shutil.which("dig") is None, reason="dig not installed (apt-get install dnsutils)")
async def test_dig_one_shot_queries_find_the_service() -> None:
    registry = web_registry()
    advertiser = MdnsAdvertiser(registry, interfaces=["127.0.0.1"], node_name="n1")
    await advertiser.start()
    try:
        set_web_ready(registry, True)
        await advertiser.wait_idle()
        ptr = await dig_until(lambda out: "PTR" in out, "_http._tcp.local", "PTR")
        assert re.search(
            r"^_http\._tcp\.local\.\s+\d+\s+IN\s+PTR\s+web\\@default\._http\._tcp\.local\.$",
            ptr,
            re.MULTILINE,
        )
        srv = await dig_until(lambda out: "SRV" in out, "web@default._http._tcp.local", "SRV")
        assert re.search(r"\sSRV\s+0 0 80 n1-127-214-0-1\.local\.$", srv, re.MULTILINE)
        txt = await dig_until(lambda out: "TXT" in out, "web@default._http._tcp.local", "TXT")
        assert '"namespace=default"' in txt and '"service=web"' in txt
        a = await dig_until(lambda out: " A " in out or "\tA\t" in out, "n1-127-214-0-1.local", "A")
        assert "127.214.0.1" in a

        set_web_ready(registry, False)
        await advertiser.wait_idle()
        await dig_until(lambda out: "PTR" not in out, "_http._tcp.local", "PTR")
    finally:
        await advertiser.close()

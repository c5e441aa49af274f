"""The systemd-resolved mode. Against the real systemd-resolved where `resolvectl status` answers (a dummy link
this test creates, a meshd DNS server on it, a lookup through the system resolver); it skips with the reason
elsewhere. The wiring (which commands, fallback, undo) runs everywhere against a stand-in `resolvectl` script."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from meshd.hostnames import HostNames, block_lines
from meshd.hostnames.resolved import resolved_unavailable
from meshd.model.endpoints import PortInfo, ServiceInfo, ServiceKey
from meshd.registry import Registry

WEB = ServiceInfo(ServiceKey("default", "web"), "10.213.130.7", (PortInfo("http", 80, 8080),))


def fake_resolvectl(directory: Path, *, refuse: str = "") -> Path:
    """A `resolvectl` that logs its arguments; `refuse` names a verb it fails as polkit does without root."""
    log = directory / "calls"
    script = directory / "resolvectl"
    script.write_text(f"""#!/bin/sh
echo "$*" >> {log}
if [ "$1" = "{refuse}" ]; then echo "Failed to set DNS configuration: Access denied" >&2; exit 1; fi
exit 0
""")
    script.chmod(0o755)
    return log


@pytest.fixture
def hosts(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "hosts"
    path.write_text("127.0.0.1 localhost\n")
    monkeypatch.setenv("MESHD_HOSTS_FILE", str(path))
    return path


async def test_auto_routes_the_zone_to_the_bridge_dns_and_reverts_on_stop(tmp_path, monkeypatch, hosts):
    calls = fake_resolvectl(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    registry = Registry()
    registry.upsert_service(WEB)
    names = HostNames(registry, mode="auto", zone="cluster.local", tag="t1", link="meshd0", dns_server="10.213.0.1")
    await names.start()
    assert names.mode == "resolved"
    assert calls.read_text().splitlines() == [
        "status", "dns meshd0 10.213.0.1", "domain meshd0 ~cluster.local", "default-route meshd0 false"]
    assert block_lines(hosts.read_text(), "t1") is None  # the hosts file is left alone
    await names.close()
    assert calls.read_text().splitlines()[-1] == "revert meshd0"


async def test_without_permission_auto_falls_back_to_the_hosts_file_and_says_so(tmp_path, monkeypatch, hosts,
                                                                                caplog):
    fake_resolvectl(tmp_path, refuse="dns")
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    registry = Registry()
    registry.upsert_service(WEB)
    names = HostNames(registry, mode="auto", zone="cluster.local", tag="t2", link="meshd0", dns_server="10.213.0.1")
    with caplog.at_level(logging.WARNING, logger="meshd.hostnames"):
        await names.start()
    assert names.mode == "hosts" and block_lines(hosts.read_text(), "t2")
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "Access denied" in warning and "as root" in warning and "/etc/hosts instead" in warning
    await names.close()
    assert block_lines(hosts.read_text(), "t2") is None


async def test_resolved_asked_for_where_it_does_not_run_is_said_and_the_agent_carries_on(monkeypatch, hosts,
                                                                                        caplog):
    monkeypatch.setenv("PATH", "/nonexistent")
    names = HostNames(Registry(), mode="resolved", zone="cluster.local", tag="t3", link="meshd0",
                      dns_server="10.213.0.1")
    with caplog.at_level(logging.WARNING, logger="meshd.hostnames"):
        await names.start()
    assert names.mode == "off"
    assert any("resolvectl is not installed" in r.getMessage() for r in caplog.records)
    await names.close()


# --- the real systemd-resolved -----------------------------------------------------------------------------


@pytest.fixture
async def real_resolved() -> None:
    reason = await resolved_unavailable()
    if reason:
        pytest.skip(f"the systemd-resolved mode needs systemd-resolved: {reason}")
    if shutil.which("ip") is None:
        pytest.skip("the systemd-resolved test needs iproute2 (ip) to make its own dummy link")


def uses_resolved() -> bool:
    def read(path: str) -> str:
        try:
            return Path(path).read_text()
        except OSError:
            return ""
    nss = [line for line in read("/etc/nsswitch.conf").splitlines() if line.startswith("hosts:")]
    return "127.0.0.53" in read("/etc/resolv.conf") or any(" resolve" in line for line in nss)


@pytest.fixture
def dummy_link(real_resolved):
    """A dummy link with an address of its own (a network this test makes, removed after)."""
    link, address = "meshdtest0", "10.253.77.1"
    try:
        for step in (["ip", "link", "add", link, "type", "dummy"], ["ip", "addr", "add", f"{address}/24", "dev", link],
                     ["ip", "link", "set", link, "up"]):
            done = subprocess.run(step, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                pytest.skip(f"cannot make a dummy link (needs root): {done.stderr.strip()}")
        yield link, address
    finally:
        subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)


async def test_the_system_resolver_answers_the_zone_through_resolved(dummy_link):
    from meshd.dns.server import DnsServer

    link, address = dummy_link
    registry = Registry()
    registry.upsert_service(WEB)
    dns = DnsServer(registry, listen=[(address, 53)])
    names = HostNames(registry, mode="resolved", zone="cluster.local", tag="t4", link=link, dns_server=address)
    try:
        await dns.start()
        await names.start()
        assert names.mode == "resolved"
        found = await asyncio.to_thread(
            subprocess.run, ["resolvectl", "query", "--legend=no", "web.default.svc.cluster.local"],
            capture_output=True, text=True, check=False)
        assert "10.213.130.7" in found.stdout, found.stdout + found.stderr
        if uses_resolved():  # libc asks resolved (nss-resolve, or the 127.0.0.53 stub in resolv.conf)
            lookup = await asyncio.to_thread(subprocess.run, ["getent", "hosts", "web.default.svc.cluster.local"],
                                             capture_output=True, text=True, check=False)
            assert lookup.stdout.split()[:1] == ["10.213.130.7"], lookup
        await names.close()
        status = await asyncio.to_thread(subprocess.run, ["resolvectl", "domain", link], capture_output=True,
                                         text=True, check=False)
        assert "cluster.local" not in status.stdout
    finally:
        await names.close()
        await dns.close()

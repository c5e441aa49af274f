"""The hosts-file mode on a real file (a temp copy, never the machine's /etc/hosts) following a real registry."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from meshd.hostnames import HostNames, HostsFileNames, block_lines, hostsfile, write_hosts_file
from meshd.model.endpoints import PortInfo, ServiceInfo, ServiceKey
from meshd.registry import PodRecord, Registry
from tests.integration.agent_harness import eventually

pytestmark = pytest.mark.usefixtures("no_blocking_calls")

TAG = "test0123"
USER = "127.0.0.1\tlocalhost\n# the user's own\n  10.1.2.3   build.lan   build  # trailing comment\n\n::1 ip6-localhost"
STALE = f"# BEGIN meshd {TAG}\n10.9.9.9\told.default.svc.cluster.local\n# END meshd {TAG}\n"


def web(address: str | None = "127.214.0.10", name: str = "web") -> ServiceInfo:
    return ServiceInfo(ServiceKey("default", name), address, (PortInfo("http", 80, 8080),))


def names(path: Path) -> set[str]:
    lines = block_lines(path.read_text(), TAG) or ()
    return {name for line in lines for name in line.split()[1:]}


@pytest.fixture
def hosts(tmp_path: Path) -> Path:
    path = tmp_path / "hosts"
    path.write_text(USER + "\n" + STALE)
    path.chmod(0o640)
    return path


async def test_the_block_follows_services_as_they_come_and_go_and_leaves_with_close(hosts):
    registry = Registry()
    registry.upsert_service(web())
    inode = hosts.stat().st_ino
    names_file = HostsFileNames(registry, tag=TAG, path=hosts, interval=0.05)
    await names_file.start()
    # a crashed agent's block is replaced where it stands, not duplicated; the user's lines are untouched
    text = hosts.read_text()
    assert text.startswith(USER + "\n") and text.count(f"# BEGIN meshd {TAG}") == 1 and "old.default" not in text
    assert block_lines(text, TAG) == ("127.214.0.10\tweb.default.svc.cluster.local web.default.svc web.default",)
    # written atomically (a new inode by rename) with the file's mode
    assert hosts.stat().st_ino != inode and (hosts.stat().st_mode & 0o777) == 0o640

    registry.upsert_service(web("127.214.0.11", "api"))
    await eventually(lambda: "api.default.svc.cluster.local" in names(hosts), timeout=5)
    registry.delete_service(ServiceKey("default", "web"))
    await eventually(lambda: "web.default" not in names(hosts), timeout=5)

    # a headless Service: one line per ready endpoint, and the pods' own names
    registry.upsert_service(web(None, "db"), selector={"app": "db"})
    for i in range(2):
        registry.upsert_pod(PodRecord("default", f"db-{i}", {"app": "db"}, f"127.214.1.{i + 1}",
                                      ready=True, hostname=f"db-{i}", subdomain="db"))
    await eventually(lambda: {"db-0.db.default", "db-1.db.default.svc.cluster.local"} <= names(hosts), timeout=5)
    db_lines = [line for line in block_lines(hosts.read_text(), TAG) or () if "\tdb.default" in line]
    assert sorted(line.split()[0] for line in db_lines) == ["127.214.1.1", "127.214.1.2"]

    await names_file.close()
    assert hosts.read_text() == USER + "\n"  # the user's last line keeps the newline our block needed


async def test_a_burst_of_updates_is_one_write(hosts, monkeypatch):
    writes: list[str] = []
    real = hostsfile.write_hosts_file
    monkeypatch.setattr(hostsfile, "write_hosts_file", lambda path, text: writes.append(text) or real(path, text))
    registry = Registry()
    names_file = HostsFileNames(registry, tag=TAG, path=hosts, interval=0.05)
    await names_file.start()
    writes.clear()
    for i in range(50):  # all before the worker runs: one wake-up
        registry.upsert_service(web(f"127.214.2.{i + 1}", f"s{i}"))
    await eventually(lambda: len(names(hosts)) == 150, timeout=5)
    assert len(writes) == 1
    await names_file.close()


async def test_a_file_that_cannot_be_written_is_said_once_and_nothing_stops(tmp_path, caplog):
    registry = Registry()
    missing = tmp_path / "no-such-dir" / "hosts"
    names_file = HostsFileNames(registry, tag=TAG, path=missing, interval=0.01, retry_delay=0.01)
    with caplog.at_level(logging.WARNING, logger="meshd.hostnames"):
        await names_file.start()
        for i in range(5):
            registry.upsert_service(web(f"127.214.3.{i + 1}", f"s{i}"))
            await eventually(lambda: names_file.written is None, timeout=5)
        missing.parent.mkdir()
        missing.write_text(USER)
        await eventually(lambda: len(names(missing)) == 15, timeout=10)  # retried: it recovers by itself
        await names_file.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(missing) in warnings[0], warnings
    assert missing.read_text() == USER + "\n"


async def test_hosts_mode_through_the_agent_component_and_off(hosts, monkeypatch):
    monkeypatch.setenv("MESHD_HOSTS_FILE", str(hosts))
    registry = Registry()
    registry.upsert_service(web())
    component = HostNames(registry, mode="hosts", zone="mesh.test", tag=TAG)
    await component.start()
    assert component.mode == "hosts" and "web.default.svc.mesh.test" in names(hosts)
    await component.close()
    assert block_lines(hosts.read_text(), TAG) is None
    before = hosts.read_text()
    off = HostNames(registry, mode="off", zone="mesh.test", tag=TAG)
    await off.start()
    assert off.mode == "off" and hosts.read_text() == before
    await off.close()


async def test_auto_without_resolved_keeps_the_hosts_file(hosts, monkeypatch):
    monkeypatch.setenv("MESHD_HOSTS_FILE", str(hosts))
    monkeypatch.setenv("PATH", "/nonexistent")  # no resolvectl: auto falls back to the hosts file
    registry = Registry()
    registry.upsert_service(web())
    component = HostNames(registry, mode="auto", zone="cluster.local", tag=TAG, link="meshd0", dns_server="10.213.0.1")
    await component.start()
    assert component.mode == "hosts" and "web.default" in names(hosts)
    await component.close()


def test_write_keeps_mode_and_owner_and_replaces_atomically(tmp_path):
    path = tmp_path / "hosts"
    path.write_text("a\n")
    path.chmod(0o604)
    os.chown(path, 1234, 4321) if os.geteuid() == 0 else None
    owner = (path.stat().st_uid, path.stat().st_gid)
    assert write_hosts_file(path, "b\n") == "renamed"
    assert path.read_text() == "b\n" and (path.stat().st_mode & 0o777) == 0o604
    assert (path.stat().st_uid, path.stat().st_gid) == owner
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts"]  # no temp file left behind


def test_write_through_a_symlink_keeps_the_symlink(tmp_path):
    target = tmp_path / "real-hosts"
    target.write_text("a\n")
    link = tmp_path / "hosts"
    link.symlink_to(target)
    write_hosts_file(link, "b\n")
    assert link.is_symlink() and target.read_text() == "b\n"


async def test_an_agent_id_with_spaces_still_gets_one_block(hosts, monkeypatch):
    monkeypatch.setenv("MESHD_HOSTS_FILE", str(hosts))
    registry = Registry()
    registry.upsert_service(web())
    component = HostNames(registry, mode="hosts", zone="cluster.local", tag="my agent")
    await component.start()
    assert block_lines(hosts.read_text(), "my-agent")
    await component.close()

"""Real etcd members (Debian's etcd-server) for tests: one or three, on free ports, each with its own data dir;
stopped by the pid the test started, never by name."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.agent_harness import free_port

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def require_etcd() -> str:
    if not os.access(ETCD, os.X_OK):
        pytest.skip("etcd is not installed (Debian: apt-get install etcd-server)")
    return ETCD


class EtcdMember:
    def __init__(self, name: str, directory: Path, client_hosts: tuple[str, ...] = ("127.0.0.1",)) -> None:
        self.name, self.directory = name, directory
        self.client_hosts = client_hosts  # where clients reach it (another address: a test LAN's bridge)
        self.client_port, self.peer_port = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.cluster = ""
        self.token = f"meshd-test-{os.getpid()}-{self.peer_port}"  # the same for every member of one cluster

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def start(self, *, new: bool = True) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [require_etcd(), "--name", self.name, "--data-dir", str(self.directory / "data"),
                   "--listen-client-urls", ",".join(f"http://{h}:{self.client_port}" for h in self.client_hosts),
                   "--advertise-client-urls", ",".join(f"http://{h}:{self.client_port}" for h in self.client_hosts), "--listen-peer-urls", f"http://127.0.0.1:{self.peer_port}",
                   "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_port}",
                   "--initial-cluster", self.cluster, "--initial-cluster-state", "new" if new else "existing",
                   "--initial-cluster-token", self.token,
                   "--heartbeat-interval", "100", "--election-timeout", "1000"]
        with (self.directory / "etcd.log").open("ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.endpoint}/health", timeout=1) as response:
                return b'"true"' in response.read()
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


class EtcdCluster:
    def __init__(self, directory: Path, size: int = 1, client_hosts: tuple[str, ...] = ("127.0.0.1",)) -> None:
        self.members = [EtcdMember(f"m{i}", directory / f"m{i}", client_hosts) for i in range(size)]
        cluster = ",".join(f"{m.name}=http://127.0.0.1:{m.peer_port}" for m in self.members)
        for member in self.members:
            member.cluster, member.token = cluster, self.members[0].token

    @property
    def url(self) -> str:
        return "etcd://" + ",".join(m.endpoint for m in self.members)

    @property
    def endpoints(self) -> list[str]:
        return [f"http://{m.endpoint}" for m in self.members]

    def start(self) -> EtcdCluster:
        for member in self.members:
            member.start()
        self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(m.healthy() for m in self.members if m.proc is not None):
                return
            time.sleep(0.1)
        logs = "".join((m.directory / "etcd.log").read_text()[-1500:] for m in self.members)
        raise AssertionError("etcd did not become healthy: " + logs)

    def restart(self, member: EtcdMember) -> None:
        member.start(new=False)
        self.wait_healthy()

    def stop(self) -> None:
        for member in self.members:
            member.stop()

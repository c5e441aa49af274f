"""Real etcd members (Debian's etcd-server) for tests: one or three, on free ports, each with its own data dir;
stopped by the pid the test started, never by name. With `tls=EtcdPki.make(...)` clients reach them over
https:// with client certificates (`--cert-file --key-file --client-cert-auth --trusted-ca-file`), the
certificates made by openssl with the README's commands."""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.agent_harness import free_port

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def require_etcd() -> str:
    if not os.access(ETCD, os.X_OK):
        pytest.skip("etcd is not installed (Debian: apt-get install etcd-server)")
    return ETCD


def openssl(*args: str, cwd: Path) -> None:
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)}: {out.stderr}")


@dataclass(frozen=True)
class EtcdPki:
    """A CA, etcd's serving certificate (for `hosts`; serverAuth and clientAuth: etcd's JSON gateway dials its
    own gRPC with it) and one client certificate for the agents, as the README makes them."""

    directory: Path

    @classmethod
    def make(cls, directory: Path, hosts: Sequence[str] = ("127.0.0.1",)) -> EtcdPki:
        directory.mkdir(parents=True, exist_ok=True)
        ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
        openssl("req", "-x509", *ec, "-days", "3650", "-subj", "/CN=etcd-ca", "-keyout", "ca.key", "-out", "ca.crt",
                cwd=directory)
        sans = ",".join(f"IP:{h}" for h in hosts)
        for name, usage, extra in (("server", "serverAuth,clientAuth", f"subjectAltName={sans}\n"),
                                   ("client", "clientAuth", "")):
            (directory / f"{name}.ext").write_text(f"{extra}extendedKeyUsage={usage}\n")
            openssl("req", *ec, "-subj", f"/CN=etcd-{name}", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                    cwd=directory)
            openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                    "-days", "365", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=directory)
        return cls(directory)

    def path(self, name: str) -> str:
        return str(self.directory / name)

    def server_args(self) -> list[str]:
        return ["--cert-file", self.path("server.crt"), "--key-file", self.path("server.key"),
                "--client-cert-auth", "--trusted-ca-file", self.path("ca.crt")]

    def agent_args(self) -> list[str]:
        """`meshd agent`'s flags for this etcd."""
        return ["--store-ca", self.path("ca.crt"), "--store-cert", self.path("client.crt"),
                "--store-key", self.path("client.key")]

    def curl_args(self) -> list[str]:
        return ["--cacert", self.path("ca.crt"), "--cert", self.path("client.crt"), "--key", self.path("client.key")]

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.path("ca.crt"))
        context.load_cert_chain(self.path("client.crt"), self.path("client.key"))
        return context


class EtcdMember:
    def __init__(self, name: str, directory: Path, client_hosts: tuple[str, ...] = ("127.0.0.1",),
                 tls: EtcdPki | None = None, *, peer_host: str = "127.0.0.1", inside: tuple[str, ...] = ()) -> None:
        """`inside`: the command prefix that runs it in a network namespace of its own (`ip netns exec NS`), its
        peers then on `peer_host` (that namespace's address) and its clients on `client_hosts` (the first is the
        one this harness asks for its health)."""
        self.name, self.directory, self.tls = name, directory, tls
        self.scheme = "https" if tls is not None else "http"
        self.client_hosts = client_hosts  # where clients reach it (another address: a test LAN's bridge)
        self.peer_host, self.inside = peer_host, inside
        self.client_port, self.peer_port = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.cluster = ""
        self.token = f"meshd-test-{os.getpid()}-{self.peer_port}"  # the same for every member of one cluster

    @property
    def endpoint(self) -> str:
        return f"{self.client_hosts[0] if self.inside else '127.0.0.1'}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.peer_host}:{self.peer_port}"

    def start(self, *, new: bool = True) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [*self.inside, require_etcd(), "--name", self.name, "--data-dir", str(self.directory / "data"),
                   "--listen-client-urls", ",".join(f"{self.scheme}://{h}:{self.client_port}" for h in self.client_hosts),
                   "--advertise-client-urls", ",".join(f"{self.scheme}://{h}:{self.client_port}"
                                                       for h in self.client_hosts),
                   *(self.tls.server_args() if self.tls is not None else ()),
                   "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
                   "--initial-cluster", self.cluster, "--initial-cluster-state", "new" if new else "existing",
                   "--initial-cluster-token", self.token,
                   "--heartbeat-interval", "100", "--election-timeout", "1000"]
        with (self.directory / "etcd.log").open("ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.scheme}://{self.endpoint}/health", timeout=1,
                                        context=self.tls.context() if self.tls is not None else None) as response:
                return b'"true"' in response.read()
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


class EtcdCluster:
    def __init__(self, directory: Path, size: int = 1, client_hosts: tuple[str, ...] = ("127.0.0.1",),
                 tls: EtcdPki | None = None, *, members: Sequence[EtcdMember] = ()) -> None:
        """`members`: made by the caller (e.g. each in a namespace of its own), else `size` on this machine."""
        self.tls = tls
        self.members = list(members) or [EtcdMember(f"m{i}", directory / f"m{i}", client_hosts, tls)
                                         for i in range(size)]
        cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for member in self.members:
            member.cluster, member.token = cluster, self.members[0].token

    @property
    def url(self) -> str:
        return ("https://" if self.tls is not None else "etcd://") + ",".join(m.endpoint for m in self.members)

    @property
    def endpoints(self) -> list[str]:
        return [f"{m.scheme}://{m.endpoint}" for m in self.members]

    def agent_args(self) -> list[str]:
        """`--store URL` and, with TLS, the files: what `meshd agent` is given for this etcd."""
        return ["--store", self.url, *(self.tls.agent_args() if self.tls is not None else ())]

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

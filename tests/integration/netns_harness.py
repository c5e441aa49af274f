"""Test hosts on one machine (root only): a Linux bridge with an address, N network namespaces each joined to it
by a veth pair (`eth0` inside, 10.X.Y.(10+i)/24, default route via the bridge), one real etcd (Debian's) on the
bridge's address, and in every namespace its own `meshd agent --store etcd://...` (process driver, this tree's
code) with its API, DNS and mDNS on the namespace's address, as on a machine of its own. `etcd_tls=True`: etcd
speaks only TLS with client certificates (`--client-cert-auth`), and agents get `--store https://...` with
`--store-ca/--store-cert/--store-key` (`store_args()`).

Faults as on a LAN: `kill_host` SIGKILLs every process in a namespace (the agent, its sidecar, its pods),
`cut`/`heal` set the host end of its veth down/up, `restart_host` starts its agent again on the same state.
`close()` removes everything it made, also after a failure (and at exit, if a test runner dies first).

Names are unique per LAN (`mb<hex>` bridge, `mh<hex>-<i>` namespaces, `mv<hex>h<i>` veths, all <= 15 chars), so
several runs and sessions on one machine keep apart. Docker sets iptables' FORWARD policy to DROP, and with
br_netfilter loaded frames crossing a bridge go through FORWARD: a rule scoped to this bridge
(`-i BR -o BR -j ACCEPT`) lets them pass, and goes with the LAN.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.etcd_harness import EtcdCluster, EtcdPki
from tests.integration.netns_support import free_port_on, pick_subnet, sh, usable, wait_for

ROOT = Path(__file__).resolve().parents[2]
API_PORT = 7700


@dataclass
class TestHost:
    __test__ = False  # not a test class (pytest collects Test* names it sees imported into a test module)

    index: int
    netns: str  # "" for the machine's own node (its root namespace)
    veth: str  # the host end, on the bridge ("" for the machine's own node)
    address: str
    directory: Path
    name: str = ""
    driver: str = "process"
    agent_id: str = ""
    port: int = API_PORT  # the API's
    dns: str = ""  # ADDR:PORT of its DNS (default: ADDRESS:53)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def api(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def inside(self) -> tuple[str, ...]:
        """The command prefix that runs a command on this host."""
        return ("ip", "netns", "exec", self.netns) if self.netns else ()

    @property
    def log(self) -> Path:
        return self.directory / "agent.log"

    @property
    def state_dir(self) -> Path:
        return self.directory / "state"

    @property
    def token(self) -> str:
        return (self.state_dir / "token").read_text().strip()


@dataclass
class TestLan:
    """`with TestLan(tmp_path, hosts=3) as lan:` — see the module's docstring."""

    __test__ = False

    directory: Path
    hosts_wanted: int = 3
    agents: bool = True  # start an agent in every namespace (False: bare hosts, e.g. for a capture)
    sidecar: bool = False  # each agent's node sidecar (the mesh's data plane)
    mdns: bool = True  # mDNS/DNS-SD on each namespace's own address (else off)
    node_grace: float = 3.0
    leader_ttl: int = 3
    agent_args: Sequence[str] = ()
    etcd_tls: bool = False  # etcd over TLS with client certificates (openssl's, in DIRECTORY/etcd-pki)
    tag: str = field(default_factory=lambda: secrets.token_hex(2))
    hosts: list[TestHost] = field(default_factory=list)
    subnet: ipaddress.IPv4Network | None = None
    etcd: EtcdCluster | None = None
    _made: list[tuple[str, ...]] = field(default_factory=list)  # undo commands, run in reverse at close
    _closed: bool = False
    _machine_sidecar: bool = False

    @property
    def bridge(self) -> str:
        return f"mb{self.tag}"

    @property
    def gateway(self) -> str:
        assert self.subnet is not None
        return str(self.subnet.network_address + 1)

    @property
    def store(self) -> str:
        assert self.etcd is not None
        return f"{'https' if self.etcd_tls else 'etcd'}://{self.gateway}:{self.etcd.members[0].client_port}"

    def store_args(self) -> list[str]:
        """`--store URL` and, with TLS, the files: what an agent on this LAN is given to reach etcd."""
        assert self.etcd is not None
        return ["--store", self.store, *(self.etcd.tls.agent_args() if self.etcd.tls is not None else ())]

    def __enter__(self) -> TestLan:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- building ----

    def start(self) -> TestLan:
        if why := usable():
            raise RuntimeError(why)
        atexit.register(self.close)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.subnet = pick_subnet(sh("ip", "-4", "route", "show", "table", "all").stdout.splitlines())
        self._bridge()
        for i in range(self.hosts_wanted):
            self.hosts.append(self._host(i))
        self._etcd()
        self.check_paths()
        if self.agents:
            for host in self.hosts:
                self.start_agent(host.index, wait=False)
            for host in self.hosts:
                self.wait_agent(host.index)
        return self

    def _bridge(self) -> None:
        prefix = self.subnet.prefixlen if self.subnet else 24
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        self._made.append(("ip", "link", "del", self.bridge))
        # IPv6 off on the test links: no router solicitations or MLD in captures, and nothing leaves by v6
        sh("sysctl", "-qw", f"net.ipv6.conf.{self.bridge}.disable_ipv6=1", check=False)
        sh("ip", "addr", "add", f"{self.gateway}/{prefix}", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        rule = ("FORWARD", "-i", self.bridge, "-o", self.bridge, "-m", "comment", "--comment",
                f"meshd test LAN {self.bridge}", "-j", "ACCEPT")
        # ... and nothing from the test hosts is forwarded off the LAN (their default route is the bridge)
        fence = ("FORWARD", "-i", self.bridge, "!", "-o", self.bridge, "-m", "comment", "--comment",
                 f"meshd test LAN {self.bridge}", "-j", "DROP")
        for spec in (fence, rule):  # inserted at the top: the ACCEPT before the DROP
            if shutil.which("iptables") and sh("iptables", "-I", *spec, check=False).returncode == 0:
                self._made.append(("iptables", "-D", *spec))

    def _host(self, i: int) -> TestHost:
        assert self.subnet is not None
        netns, veth, inner = f"mh{self.tag}-{i}", f"mv{self.tag}h{i}", f"mv{self.tag}n{i}"
        host = TestHost(index=i, netns=netns, veth=veth, address=str(self.subnet.network_address + 10 + i),
                        directory=self.directory / f"host{i}", name=f"host{i}", agent_id=f"netns-{self.tag}-{i}")
        host.directory.mkdir(parents=True, exist_ok=True)
        sh("ip", "netns", "add", netns)
        self._made.append(("ip", "netns", "del", netns))
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", inner)
        self._made.append(("ip", "link", "del", veth))  # usually gone with the namespace already
        sh("sysctl", "-qw", f"net.ipv6.conf.{veth}.disable_ipv6=1", check=False)
        sh("ip", "link", "set", veth, "master", self.bridge)
        sh("ip", "link", "set", veth, "up")
        sh("ip", "link", "set", inner, "netns", netns)
        inside = ("ip", "netns", "exec", netns)
        sh(*inside, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", check=False)
        sh(*inside, "ip", "link", "set", inner, "name", "eth0")
        sh(*inside, "ip", "addr", "add", f"{host.address}/{self.subnet.prefixlen}", "dev", "eth0")
        sh(*inside, "ip", "link", "set", "lo", "up")
        sh(*inside, "ip", "link", "set", "eth0", "up")
        sh(*inside, "ip", "route", "add", "default", "via", self.gateway)
        # `ip netns exec` mounts /etc/netns/NS/* over /etc: the host's resolver is its own agent's DNS (names
        # outside the zone fail at once, not after a timeout towards a resolver the LAN cannot reach)
        etc = Path("/etc/netns") / netns
        etc.mkdir(parents=True, exist_ok=True)
        self._made.append(("rm", "-rf", str(etc)))
        (etc / "resolv.conf").write_text(f"nameserver {host.address if self.agents else '127.0.0.1'}\n"
                                         "options timeout:1 attempts:1\n")
        # ... and /etc/hosts of its own: names other agents on this machine put in the machine's (host-names
        # mode "hosts") must not answer for this host's Services
        (etc / "hosts").write_text(f"127.0.0.1 localhost\n{host.address} {host.name}\n")
        return host

    def _etcd(self) -> None:
        """Debian's etcd, one member, for clients on the bridge's address (the hosts) and on 127.0.0.1."""
        hosts = (self.gateway, "127.0.0.1")
        pki = EtcdPki.make(self.directory / "etcd-pki", hosts) if self.etcd_tls else None
        self.etcd = EtcdCluster(self.directory / "etcd", client_hosts=hosts, tls=pki).start()

    def check_paths(self, timeout: float = 10.0) -> None:
        """Every namespace reaches etcd on the bridge's address, and the first reaches the last across the bridge
        (what a FORWARD DROP policy would stop): a clear failure here rather than agents that never see etcd."""
        assert self.etcd is not None
        port, tls = self.etcd.members[0].client_port, self.etcd.tls
        url = f"{'https' if tls else 'http'}://{self.gateway}:{port}/health"
        for host in self.hosts:
            def answers(h: TestHost = host) -> bool:
                return self.run(h.index, "curl", "-sf", "-m", "2", *(tls.curl_args() if tls else ()), url).returncode == 0
            wait_for(answers, timeout=timeout, what=f"{host.netns} reaching etcd on {self.gateway}:{port}")
        if len(self.hosts) > 1:
            first, last = self.hosts[0], self.hosts[-1]
            listener = self.popen(last.index, sys.executable, "-c",
                                  "import socket\ns = socket.create_server((%r, 9))\ns.settimeout(15)\n"
                                  "c, _ = s.accept()\nc.sendall(b'ok')\nc.close()" % last.address)
            client = ("import socket, time\nend = time.monotonic() + %r\nwhile time.monotonic() < end:\n try:\n"
                      "  print(socket.create_connection((%r, 9), 1).recv(2).decode()); break\n"
                      " except OSError: time.sleep(0.05)" % (timeout, last.address))
            try:
                try:
                    out = self.run(first.index, sys.executable, "-c", client, timeout=timeout + 10).stdout.strip()
                except subprocess.TimeoutExpired:
                    out = ""
                if out != "ok":
                    raise AssertionError(f"{first.netns} cannot reach {last.address} across the bridge "
                                         f"{self.bridge}: is FORWARD dropping bridged frames? "
                                         f"{sh('iptables', '-S', 'FORWARD', check=False).stdout}")
            finally:
                listener.kill()
                listener.wait(5)

    # ---- agents ----

    def start_machine(self, agent_id: str, *, driver: str = "docker", sidecar: bool = False,
                      wait: bool = True) -> TestHost:
        """The machine's own node: an agent in this (root) namespace, its API and DNS on the bridge's address
        (free ports), mDNS there too, the Docker driver by default. Its index is len(hosts) before the call.
        kill_host SIGKILLs its process group (the agent, its sidecar); its containers stay on the engine, so the
        caller removes them by `agent_id` (tests: a RUN_ID-prefixed id, which the session cleanup finds too)."""
        i = len(self.hosts)
        host = TestHost(index=i, netns="", veth="", address=self.gateway, directory=self.directory / "machine",
                        name="machine", driver=driver, agent_id=agent_id, port=free_port_on(self.gateway),
                        dns=f"{self.gateway}:{free_port_on(self.gateway, udp=True)}")
        host.directory.mkdir(parents=True, exist_ok=True)
        self.hosts.append(host)
        self._machine_sidecar = sidecar
        return self.start_agent(i, wait=wait)

    def agent_command(self, i: int) -> list[str]:
        host = self.hosts[i]
        sidecar = self.sidecar if host.netns else self._machine_sidecar
        return [sys.executable, "-m", "meshd.cli", "agent", "--driver", host.driver,
                "--api", f"{host.address}:{host.port}", "--dns", host.dns or f"{host.address}:53",
                "--state-dir", str(host.state_dir), "--agent-id", host.agent_id,
                *self.store_args(), "--node-name", host.name, "--node-grace", f"{self.node_grace:g}",
                "--leader-ttl", str(self.leader_ttl), "--mdns", host.address if self.mdns else "off",
                "--host-names", "off", "--ingress-http", "off", "--ingress-https", "off",
                "--sidecar" if sidecar else "--no-sidecar", *self.agent_args]

    def environment(self, i: int) -> dict[str, str]:
        """This tree's code first; in a namespace, a run dir of its own (host slots are per machine, and a
        namespace is one; the machine's own node shares the machine's with every other agent on it)."""
        host = self.hosts[i]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(
            os.pathsep), "MESHD_HOST_NAMES": "off", "HOME": str(host.directory)}
        if host.netns:
            env["MESHD_RUN_DIR"] = str(host.directory / "run")
        return env

    def start_agent(self, i: int, *, wait: bool = True) -> TestHost:
        host = self.hosts[i]
        host.starts += 1
        with host.log.open("ab") as log:
            log.write(f"---- start {host.starts} ----\n".encode())
            log.flush()
            host.proc = subprocess.Popen([*host.inside, *self.agent_command(i)],
                                         stdout=log, stderr=subprocess.STDOUT, env=self.environment(i),
                                         cwd=ROOT, start_new_session=True)
        if wait:
            self.wait_agent(i)
        return host

    def wait_agent(self, i: int, timeout: float = 90.0) -> None:
        """Until the agent's /healthz answers 200 (its store reached) from the machine's own namespace."""
        host = self.hosts[i]

        def healthy() -> bool:
            if host.proc is not None and host.proc.poll() is not None:
                raise AssertionError(f"the agent of {host.name} exited {host.proc.returncode}{self.explain()}")
            return self.healthz(i)[0] == 200
        wait_for(healthy, timeout=timeout, what=f"the agent of {host.name} answering /healthz",
                 explain=self.explain)

    # ---- faults ----

    def pids(self, i: int) -> list[int]:
        """Every process on host i (in its namespace); for the machine's own node, its agent's."""
        host = self.hosts[i]
        if not host.netns:
            return [host.proc.pid] if host.proc is not None and host.proc.poll() is None else []
        out = sh("ip", "netns", "pids", host.netns, check=False).stdout
        return sorted(int(p) for p in out.split())

    def kill_host(self, i: int) -> list[int]:
        """SIGKILL every process in the namespace (the agent, its sidecar, its pods): the machine dies. The
        machine's own node: its agent's process group (see start_machine)."""
        host, killed = self.hosts[i], []
        if not host.netns:
            if host.proc is not None and host.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(host.proc.pid, signal.SIGKILL)
                    killed.append(host.proc.pid)
                host.proc.wait(10)
            return killed
        for _ in range(50):
            pids = self.pids(i)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.05)
        if host.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                host.proc.wait(10)
        return sorted(set(killed))

    def cut(self, i: int) -> None:
        """The host's cable pulled: its veth's host end down (the namespace's eth0 loses its carrier)."""
        if not self.hosts[i].veth:
            raise ValueError("the machine's own node has no cable to pull: cut a namespace host")
        sh("ip", "link", "set", self.hosts[i].veth, "down")

    def heal(self, i: int) -> None:
        if self.hosts[i].veth:
            sh("ip", "link", "set", self.hosts[i].veth, "up")

    def restart_host(self, i: int, *, wait: bool = True) -> TestHost:
        """The machine back after a crash: everything in it killed, the agent started on the same state dir."""
        self.kill_host(i)
        return self.start_agent(i, wait=wait)

    # ---- looking inside ----

    def run(self, i: int, *command: str, timeout: float = 30, check: bool = False) -> subprocess.CompletedProcess[str]:
        """`command` inside host i's namespace (its network, this machine's files)."""
        result = subprocess.run([*self.hosts[i].inside, *command], capture_output=True,
                                text=True, timeout=timeout, env=self.environment(i), check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} in {self.hosts[i].netns}: exit {result.returncode}: "
                                 f"{result.stderr.strip()}")
        return result

    def popen(self, i: int, *command: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        """A long-running `command` in host i's namespace (its caller stops it, or kill_host/close do)."""
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        return subprocess.Popen([*self.hosts[i].inside, *command], env=self.environment(i),
                                start_new_session=True, **kwargs)

    def healthz(self, i: int, *, inside: bool = False) -> tuple[int, str]:
        """(status, body) of host i's /healthz: from this machine, or (inside) from its own namespace, which
        still works while it is cut off. (0, why) when nothing answers."""
        url = self.hosts[i].api + "/healthz"
        if inside:
            out = self.run(i, "curl", "-s", "-m", "3", "-w", "\n%{http_code}", url).stdout
            body, _, code = out.rpartition("\n")
            return int(code or 0), body
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError as error:
            return 0, str(error)

    def metric(self, i: int, name: str, *, inside: bool = False) -> float | None:
        """A metric of host i's agent (/metrics), None when it does not answer."""
        url = self.hosts[i].api + "/metrics"
        if inside:
            text = self.run(i, "curl", "-sf", "-m", "3", url).stdout
        else:
            try:
                with urllib.request.urlopen(url, timeout=3) as response:
                    text = response.read().decode()
            except OSError:
                return None
        found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        return float(found.group(1)) if found else None

    def api(self, i: int, path: str, *, method: str = "GET", body: str | None = None,
            content_type: str = "application/yaml", timeout: float = 5) -> tuple[int, Any]:
        """(status, JSON body) of a request to host i's API from this machine (plain HTTP, its bearer token);
        (0, why) when nothing answers."""
        request = urllib.request.Request(self.hosts[i].api + path, method=method,
                                         data=body.encode() if body is not None else None,
                                         headers={"Authorization": f"Bearer {self.hosts[i].token}",
                                                  "Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            text = error.read()
            try:
                return error.code, json.loads(text)
            except ValueError:
                return error.code, text.decode(errors="replace")
        except (OSError, ValueError) as error:
            return 0, str(error)

    def leader(self) -> str:
        """The node name of the agent whose meshd_leader is 1 ("" when none, or more than one, says so)."""
        leading = [h.name for h in self.hosts if h.proc is not None and h.proc.poll() is None
                   and self.metric(h.index, "meshd_leader") == 1]
        return leading[0] if len(leading) == 1 else ""

    def kubeconfig(self, i: int) -> Path:
        """`meshd kubeconfig` for host i's agent (https, its CA, its token), written once per start."""
        host = self.hosts[i]
        path = host.directory / f"kubeconfig-{host.starts}"
        if not path.exists():
            out = subprocess.run([sys.executable, "-m", "meshd.cli", "kubeconfig", "--state-dir", str(host.state_dir),
                                  "--api", host.api], capture_output=True, text=True, env=self.environment(i),
                                 cwd=ROOT, timeout=60, check=False)
            if out.returncode != 0:
                raise AssertionError(f"meshd kubeconfig for {host.name}: {out.stderr}")
            path.write_text(out.stdout)
        return path

    def kubectl(self, i: int, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """The real kubectl, from this machine, through host i's agent."""
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig(i)), "HOME": str(self.directory)}
        return subprocess.run(["kubectl", "--request-timeout", "10s", *args], capture_output=True, text=True,
                              env=env, timeout=timeout, check=False)

    def nodes(self, i: int) -> dict[str, dict[str, Any]]:
        """The Nodes as host i's API lists them: name -> {"ready": "True"|"False"|..., "ip": InternalIP}."""
        out = self.kubectl(i, "get", "nodes", "-o", "json")
        if out.returncode != 0:
            return {}
        found: dict[str, dict[str, Any]] = {}
        for item in json.loads(out.stdout)["items"]:
            ready = next((c["status"] for c in item["status"].get("conditions", []) if c["type"] == "Ready"), "")
            address = next((a["address"] for a in item["status"].get("addresses", []) if a["type"] == "InternalIP"),
                           "")
            found[item["metadata"]["name"]] = {"ready": ready, "ip": address}
        return found

    def explain(self, tail: int = 2500) -> str:
        """The end of every agent's log and etcd's, for a failure message."""
        parts = []
        for host in self.hosts:
            if host.log.exists():
                parts.append(f"\n---- {host.name} ({host.netns}, {host.address}) {host.log} ----\n"
                             + host.log.read_text(errors="replace")[-tail:])
        if self.etcd is not None:
            etcd_log = self.etcd.members[0].directory / "etcd.log"
            if etcd_log.exists():
                parts.append(f"\n---- etcd {etcd_log} ----\n" + etcd_log.read_text(errors="replace")[-tail // 2:])
        return "".join(parts)

    # ---- teardown ----

    def close(self) -> None:
        """Removes everything this LAN made, whatever state it is in: processes, namespaces, veths, the bridge,
        the FORWARD rule, etcd. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for host in self.hosts:
            with contextlib.suppress(Exception):
                self.heal(host.index)  # nothing is left cut: kill_host below reaches everything anyway
            with contextlib.suppress(Exception):
                self.kill_host(host.index)
        if self.etcd is not None:
            with contextlib.suppress(Exception):
                self.etcd.stop()
        for command in reversed(self._made):
            sh(*command, check=False)
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)


__all__ = ["TestHost", "TestLan", "pick_subnet", "usable", "wait_for"]

"""`--host-names hosts` end to end, in a private mount namespace: the agent and every client run with a copy of
/etc/hosts bind-mounted over it (as Docker mounts it, so renaming over it fails with EBUSY), so the machine's
own file is never touched. Real clients resolve through the system resolver: getent, curl, Python."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import RUN_ID
from tests.integration.agent_harness import free_port

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not all(shutil.which(t) for t in ("unshare", "mount", "getent", "curl")),
                                 reason="unshare, mount, getent and curl are needed (util-linux, libc-bin, curl)")]

ROOT = Path(__file__).resolve().parents[2]
USER = "127.0.0.1\tlocalhost\n# the user's own lines\n  10.1.2.3   build.lan   build   # mine\n\n::1 ip6-localhost\n"

WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: python
        command: ["sh", "-c", "exec PYTHON -u -m http.server --bind $POD_IP --directory WWW 8080"]
        ports: [{containerPort: 8080, name: http}]
        readinessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 0.2
---
apiVersion: v1
kind: Service
metadata: {name: SERVICE}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
""".replace("PYTHON", sys.executable)
API = "apiVersion: v1\nkind: Service\nmetadata: {name: api}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080}]\n"


def in_namespace(hosts: Path, *command: str) -> list[str]:
    """`command` in a new private mount namespace where `hosts` is bind-mounted over /etc/hosts."""
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"',
            str(hosts), *command]


def run(hosts: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(in_namespace(hosts, *command), check=False, capture_output=True, text=True, timeout=30)


def until(check, *, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {value!r})")


@pytest.fixture
def hosts(tmp_path: Path) -> Path:
    path = tmp_path / "hosts"
    path.write_text(USER)
    probe = run(path, "true")
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here (needs root): {probe.stderr.strip()}")
    return path


class Up:
    """`meshd up -f` with the process driver and --host-names hosts, inside the namespace."""

    def __init__(self, tmp_path: Path, hosts: Path, manifest: Path) -> None:
        self.api = f"127.0.0.1:{free_port()}"
        self.args = ["up", "-f", str(manifest), "--driver", "process", "--host-names", "hosts", "--api", self.api,
                     "--dns", f"127.0.0.1:{free_port(udp=True)}", "--state-dir", str(tmp_path / "state"),
                     "--mdns", "off", "--agent-id", f"{RUN_ID}-hosts", "--sidecar-metrics",
                     f"127.0.0.1:{free_port()}", "--backoff-initial", "1"]
        self.hosts = hosts
        self.state = tmp_path / "state"
        self.log = tmp_path / "agent.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Up:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(in_namespace(self.hosts, sys.executable, "-m", "meshd.cli", *self.args),
                                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        until(lambda: self.get("/healthz") == "ok", what=f"the agent's API; log: {self.log.read_text()[-2000:]}")
        return self

    def get(self, path: str) -> str | None:
        try:
            request = urllib.request.Request(f"http://{self.api}{path}", headers=self.headers())
            with urllib.request.urlopen(request, timeout=2) as reply:
                return reply.read().decode()
        except OSError:
            return None

    def cli(self, *args: str, stdin: str | None = None) -> None:
        subprocess.run([sys.executable, "-m", "meshd.cli", "--api", self.api, *args], input=stdin, check=True,
                       capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "MESHD_TOKEN": (self.state / "token").read_text().strip()})

    def headers(self) -> dict[str, str]:
        """The agent's token once it wrote it (/healthz is open before that)."""
        try:
            return {"Authorization": f"Bearer {(self.state / 'token').read_text().strip()}"}
        except OSError:
            return {}

    def service_address(self, name: str) -> str:
        def address() -> str | None:
            body = self.get(f"/api/v1/namespaces/default/services/{name}")
            return json.loads(body)["spec"].get("clusterIP") if body else None
        return until(address, what=f"service {name}")

    def stop(self, sig: int = signal.SIGINT) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=60)


def getent(hosts: Path, name: str) -> str | None:
    result = run(hosts, "getent", "hosts", name)
    return result.stdout.split()[0] if result.returncode == 0 else None


def getaddrinfo(hosts: Path, name: str) -> set[str]:
    code = f"import socket; print(' '.join(sorted({{a[4][0] for a in socket.getaddrinfo({name!r}, 80)}})))"
    result = run(hosts, sys.executable, "-c", code)
    return set(result.stdout.split()) if result.returncode == 0 else set()


def curl(hosts: Path, url: str) -> str | None:
    result = run(hosts, "curl", "-s", "-f", "-m", "3", url)
    return result.stdout if result.returncode == 0 else None


def blocks(hosts: Path) -> int:
    return hosts.read_text().count("# BEGIN meshd ")


def test_apps_on_the_host_resolve_services_by_name_through_etc_hosts(tmp_path, hosts):
    machine_hosts = Path("/etc/hosts").read_bytes()
    inode = hosts.stat().st_ino
    manifest = tmp_path / "web.yaml"
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello from the web Service\n")
    # a name of this run's own: the process driver gives a Service the address its name hashes to, and another
    # agent's sidecar on this machine (a concurrent test) may already serve a `web` there
    svc = f"web{secrets.token_hex(3)}"
    manifest.write_text(WEB.replace("WWW", str(www)).replace("SERVICE", svc))
    up = Up(tmp_path, hosts, manifest).start()
    try:
        web = up.service_address(svc)
        assert until(lambda: getent(hosts, f"{svc}.default.svc.cluster.local"), what="getent") == web
        assert getent(hosts, f"{svc}.default.svc") == web and getent(hosts, f"{svc}.default") == web
        assert getaddrinfo(hosts, f"{svc}.default.svc.cluster.local") == {web}
        page = until(lambda: curl(hosts, f"http://{svc}.default.svc.cluster.local/"), what="curl by name")
        assert page == "hello from the web Service\n", page
        assert getent(hosts, "build.lan") == "10.1.2.3"  # the user's lines resolve as before

        # a new Service appears, a deleted one disappears
        up.cli("apply", "-f", "-", stdin=API)
        api = up.service_address("api")
        assert until(lambda: getent(hosts, "api.default.svc.cluster.local"), what="the new Service") == api
        up.cli("delete", "service", "api")
        until(lambda: getent(hosts, "api.default.svc.cluster.local") is None, what="the deleted Service to go")
        assert hosts.read_text().startswith(USER)

        # a crashed agent leaves its block; the next one replaces it (one block, never two)
        up.stop(signal.SIGKILL)
        assert blocks(hosts) == 1 and getent(hosts, f"{svc}.default") == web
        up.start()
        until(lambda: curl(hosts, f"http://{svc}.default/"), what="curl by the short name after a restart")
        assert blocks(hosts) == 1 and hosts.read_text().startswith(USER)
    finally:
        code = up.stop(signal.SIGINT)
    assert code == 0, up.log.read_text()[-3000:]
    assert hosts.stat().st_ino == inode  # rewritten in place: renaming over a bind mount fails with EBUSY
    assert "a 'meshd " in up.log.read_text()
    assert hosts.read_text() == USER  # a normal stop takes out what the agent added, and only that
    assert getent(hosts, f"{svc}.default.svc.cluster.local") is None
    assert Path("/etc/hosts").read_bytes() == machine_hosts  # the machine's own file was never touched


def test_a_bind_mounted_hosts_file_is_rewritten_in_place(hosts):
    """Docker bind-mounts /etc/hosts: rename over it fails with EBUSY, so the file is rewritten in place."""
    hosts.chmod(0o640)
    code = ("from pathlib import Path; from meshd.hostnames import write_hosts_file; "
            "print(write_hosts_file(Path('/etc/hosts'), Path('/etc/hosts').read_text() + '10.4.4.4 new.lan\\n'))")
    result = run(hosts, sys.executable, "-c", code)
    assert (result.returncode, result.stdout) == (0, "in place\n"), result.stderr
    assert hosts.read_text() == USER + "10.4.4.4 new.lan\n" and (hosts.stat().st_mode & 0o777) == 0o640
    assert getent(hosts, "new.lan") == "10.4.4.4"
    assert [p.name for p in hosts.parent.iterdir()] == ["hosts"]  # the temp file is gone

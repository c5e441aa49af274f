"""The node sidecar's listening sockets outlive it: SIGKILL it under steady load and no connection is refused
(connections wait in the backlog); the new sidecar accepts on the very same socket. Only the one request the
killed sidecar had already accepted (in flight) can fail (real agent, process driver, a real
sidecar process, a real HTTP backend: python -m http.server)."""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import textwrap
import threading
from pathlib import Path

import pytest

from meshd.model.endpoints import ServiceKey
from tests.integration.agent_harness import agent_options, eventually, free_port, ready_pods, started_agent

pytestmark = pytest.mark.timeout(180)

WEB = textwrap.dedent("""\
    apiVersion: v1
    kind: Pod
    metadata: {name: handover-web, labels: {app: handover-web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: python
        command: ["sh", "-c", "exec python3 -m http.server $PORT --bind $POD_IP"]
        ports: [{containerPort: 8080, name: http}]
        readinessProbe:
          tcpSocket: {port: http}
          periodSeconds: 0.2
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: handover-web}  # a name (so an address) no other test uses
    spec:
      selector: {app: handover-web}
      ports: [{name: http, port: 80, targetPort: http}]
    """)


def listening_inode(pid: int, address: str, port: int) -> str | None:
    """The inode of the TCP socket `pid` listens with on address:port (from /proc/net/tcp and its fds)."""
    a, b, c, d = (int(x) for x in address.split("."))
    local = f"{d:02X}{c:02X}{b:02X}{a:02X}:{port:04X}"
    inodes = [fields[9] for fields in (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
              if fields[1] == local and fields[3] == "0A"]  # LISTEN (another test's sidecar may linger there)
    links = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            links.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:  # a connection closed meanwhile
            continue
    return next((inode for inode in inodes if f"socket:[{inode}]" in links), None)


class Load(threading.Thread):
    """One new connection per request (no keep-alive), nothing retried; every failure recorded."""

    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.ok = 0
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            conn = http.client.HTTPConnection(self.address, 80, timeout=30)
            try:
                conn.request("GET", "/", headers={"Host": "handover-web", "Connection": "close"})
                reply = conn.getresponse()
                reply.read()
                if reply.status == 200:
                    self.ok += 1
                else:
                    self.failures.append(f"status {reply.status}")
            except OSError as error:
                self.failures.append(repr(error))
            finally:
                conn.close()


async def test_a_killed_sidecar_refuses_nothing_and_its_successor_accepts_on_the_same_socket(
        tmp_path: Path, agent_id: str) -> None:
    agent = await started_agent(agent_options(tmp_path, agent_id, driver="process", sidecar=True,
                                              sidecar_metrics=f"127.0.0.1:{free_port()}"))
    agent.sidecar._interval = 0.2
    try:
        await agent.controller.apply(WEB)
        await eventually(lambda: ready_pods(agent, "handover-web"), timeout=60)
        info = await eventually(lambda: agent.registry.service(ServiceKey("default", "handover-web")), timeout=30)
        address = info.address if info is not None else None
        assert address, "the Service has an address"

        def serving() -> bool:
            pid = agent.sidecar.pid
            keeper = agent.sidecar.keeper
            return bool(pid and listening_inode(pid, address, 80) and keeper is not None
                        and (address, 80, "TCP") in keeper.fds)

        await eventually(serving, timeout=60)
        load = Load(address)
        load.start()
        await eventually(lambda: load.ok >= 20, timeout=60)
        for _ in range(3):
            pid = agent.sidecar.pid
            assert pid is not None
            inode = listening_inode(pid, address, 80)
            assert inode is not None
            before = load.ok
            os.kill(pid, signal.SIGKILL)
            await eventually(lambda old=pid: agent.sidecar.pid not in (None, old), timeout=60)
            new = agent.sidecar.pid
            await eventually(lambda n=new: listening_inode(n, address, 80), timeout=60)
            assert listening_inode(new, address, 80) == inode  # adopted, not bound anew
            await eventually(lambda b=before: load.ok >= b + 20, timeout=60)
        load.stopping.set()
        await asyncio.to_thread(load.join, 60)
        assert not [f for f in load.failures if "ConnectionRefused" in f], load.failures[:5]
        # one client, one request at a time: at most the one in flight at each kill is lost
        assert len(load.failures) <= 3, load.failures[:5]
        assert all("RemoteDisconnected" in f or "ConnectionReset" in f for f in load.failures), load.failures
        assert load.ok > 60
    finally:
        await agent.close(stop_pods=True)

"""Nodes joining with a bootstrap token, on a real etcd (Debian's etcd-server) with real agents as processes:
the first agent on the empty store prints a token; a second and a third started with `--join TOKEN` and no
--store find the cluster over DNS-SD (multicast on 127.0.0.1, as test_mdns_zeroconf binds) and becomes a Node in the same store
(`kubectl get nodes`); `--server` joins without discovery; an expired token and a wrong secret are refused with
their reason (exit status 1) and register nothing; `meshd token create|list|delete` through the API."""

from __future__ import annotations

import asyncio
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from meshd.api.certs import api_tls
from meshd.cluster.discovery import browse
from meshd.cluster.joinca import make_key_and_csr
from tests.integration.agent_harness import agent_options, api_headers, free_port, started_agent
from tests.integration.etcd_harness import EtcdCluster
from tests.integration.test_cluster_etcd import Member, node_status, poll

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
MDNS = "127.0.0.1"  # never the machine's LAN: multicast on the loopback interface


class Agent(Member):
    """A cluster agent with mDNS on 127.0.0.1; with `join`, started with --join TOKEN and no --store."""

    def __init__(self, directory: Path, name: str, store: str, *, join: str | None = None,
                 extra: tuple[str, ...] = ()) -> None:
        super().__init__(directory, name, store)
        self.join, self.extra = join, extra

    def command(self) -> list[str]:
        args = super().command()
        args[args.index("--mdns") + 1] = MDNS
        if self.join is not None:
            at = args.index("--store")
            del args[at:at + 2]
            args += ["--join", self.join, "--join-timeout", "30"]
        return [*args, *self.extra]

    @property
    def https(self) -> str:
        return self.api.replace("http://", "https://")

    def printed_token(self) -> str:
        found = re.search(r"meshd agent --join ([a-z0-9]{6}\.[a-z0-9]{16})\n", self.log.read_text())
        assert found, self.log.read_text()[-3000:]
        return found.group(1)

    async def refused(self) -> str:
        """Runs the agent expecting it to end (a refused join); its log."""
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(*self.command(), stdout=log, stderr=log)
        code = await asyncio.wait_for(self.proc.wait(), 90)
        text = self.log.read_text()
        assert code == 1, text[-3000:]
        return text

    async def meshd(self, *args: str) -> tuple[int, str, str]:
        env = {**os.environ, "MESHD_API": self.api, "PYTHONPATH": str(ROOT),
               "MESHD_TOKEN": (self.state_dir / "token").read_text().strip()}
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "meshd.cli", *args, env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode(), err.decode()


@pytest.fixture
async def agents(tmp_path: Path, etcd: EtcdCluster):  # type: ignore[no-untyped-def]
    started: list[Agent] = []

    def make(name: str, directory: str = "", **kwargs: object) -> Agent:
        agent = Agent(tmp_path / (directory or name), name, etcd.url, **kwargs)  # type: ignore[arg-type]
        started.append(agent)
        return agent

    try:
        yield make
    finally:
        await asyncio.gather(*(a.stop() for a in started))


async def _ready(member: Member, names: set[str]) -> bool:
    status = await node_status(member)
    return set(status) == names and all(v == "Ready" for v in status.values())


async def test_a_node_joins_over_dns_sd_with_the_printed_token(agents) -> None:  # type: ignore[no-untyped-def]
    n1 = agents("n1")
    await n1.start()
    token = n1.printed_token()
    assert "etcd://" not in token

    found = None
    peers = browse([MDNS])
    try:
        async with asyncio.timeout(30):
            async for peer in peers:
                if peer.node == "n1" and peer.api == n1.https:
                    found = peer
                    break
    finally:
        await peers.aclose()
    assert found is not None  # the advert names the API, never the store

    n2 = agents("n2", join=token)
    await n2.start()
    assert await poll(lambda: _ready(n1, {"n1", "n2"}))
    assert await poll(lambda: _ready(n2, {"n1", "n2"}))
    credentials = n2.state_dir / "cluster"
    for name in ("ca.crt", "node.crt", "node.key", "store"):
        assert stat.S_IMODE((credentials / name).stat().st_mode) == 0o600, name
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(credentials / "ca.crt"), str(credentials / "node.crt")],
                            capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    subject = subprocess.run(["openssl", "x509", "-noout", "-subject", "-in", str(credentials / "node.crt")],
                             capture_output=True, text=True, check=True).stdout
    assert "system:node:n2" in subject
    log = n2.log.read_text()
    assert "found node n1 of cluster" in log and "joined the cluster" in log

    # a third node with the same token: two agents advertise now, either admits it
    n3 = agents("n3", join=token)
    await n3.start()
    assert await poll(lambda: _ready(n1, {"n1", "n2", "n3"}))
    assert re.search(r"found node n[12] of cluster", n3.log.read_text())

    # the node keeps its cluster across a restart, with or without a token still valid
    await n2.stop()
    await n2.start()
    assert "already joined" in n2.log.read_text()


async def test_expired_and_wrong_tokens_are_refused_and_server_joins_without_discovery(agents) -> None:  # type: ignore[no-untyped-def]
    n1 = agents("n1")
    await n1.start()
    good = n1.printed_token()

    code, out, err = await n1.meshd("token", "create", "--ttl", "1s", "--description", "short")
    assert code == 0, err
    short = out.strip()
    assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", short)

    async def expired() -> bool:
        code, out, err = await n1.meshd("token", "list")
        assert code == 0, err
        return any(line.startswith(short[:6]) and "(expired)" in line for line in out.splitlines())

    assert await poll(expired)
    text = await agents("late", join=short, extra=("--server", n1.https)).refused()
    assert f'bootstrap token "{short[:6]}" expired at' in text, text[-2000:]

    wrong = good[:7] + ("a" if good[7] != "a" else "b") + good[8:]
    text = await agents("wrong", join=wrong).refused()  # found over DNS-SD, refused by the cluster
    assert f'bootstrap token "{good[:6]}": wrong secret' in text, text[-2000:]

    text = await agents("bogus", join="zzzzzz.0123456789abcdef", extra=("--server", n1.https)).refused()
    assert 'bootstrap token "zzzzzz" is unknown to this cluster' in text, text[-2000:]

    # a client that sends the token without asking for the proof first is refused by the agent itself
    async with aiohttp.ClientSession() as http, http.post(n1.https + "/meshd/v1/join", ssl=False, json={
            "token": wrong, "node": "direct", "csr": make_key_and_csr("direct")[1].decode()}) as response:
        status = await response.json()
    assert response.status == 401 and status["kind"] == "Status", status
    assert status["details"]["causes"][0]["reason"] == "WrongSecret"
    assert f'bootstrap token "{good[:6]}": wrong secret' in status["message"]

    assert set(await node_status(n1)) == {"n1"}  # nothing registered
    async with aiohttp.ClientSession() as http, http.get(n1.api + "/metrics") as response:
        metrics = await response.text()
    for outcome, count in (("Expired", 1), ("UnknownToken", 1), ("WrongSecret", 1), ("Admitted", 0)):
        assert f'meshd_join_requests_total{{outcome="{outcome}"}} {count:.1f}' in metrics, outcome

    n3 = agents("n3", join=good, extra=("--server", n1.https, "--mdns", "off"))
    await n3.start()
    assert await poll(lambda: _ready(n1, {"n1", "n3"}))
    assert "looking for the cluster" not in n3.log.read_text()

    # a Ready node's name is not given to another joining node
    text = await agents("n3", "n3-again", join=good, extra=("--server", n1.https)).refused()
    assert 'node name "n3" is taken by a Ready node' in text, text[-2000:]

    code, out, err = await n1.meshd("token", "delete", short)
    assert code == 0 and "deleted" in out, err
    code, out, err = await n1.meshd("token", "list")
    assert short[:6] not in out and good[:6] in out
    code, out, err = await n1.meshd("token", "delete", short[:6])
    assert code == 1 and "not found" in err


async def test_an_impostor_relaying_to_a_real_agent_never_gets_the_token(agents, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A machine on the LAN posing as an agent (its own TLS certificate) and relaying to a real one: the proof
    it relays names the real agent's certificate, which the joining node then pins; the token never reaches
    the impostor."""
    n1 = agents("n1")
    await n1.start()
    received: list[str] = []

    async def relay(request: web.Request) -> web.Response:
        received.append(f"{request.method} {request.path}")
        async with aiohttp.ClientSession() as http, http.request(
                request.method, n1.https + request.path_qs, data=await request.read(), ssl=False,
                headers={"Content-Type": request.content_type}) as answer:
            return web.Response(status=answer.status, body=await answer.read(), content_type="application/json")

    _, context = await asyncio.to_thread(api_tls, tmp_path / "impostor", ("127.0.0.1",))
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", relay)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        text = await agents("n2", join=n1.printed_token(), extra=("--server", f"https://127.0.0.1:{port}")).refused()
    finally:
        await runner.cleanup()
    assert "presented another TLS certificate than the one it proved: the token was not sent" in text, text[-2000:]
    assert received == ["GET /meshd/v1/join/proof"]
    assert set(await node_status(n1)) == {"n1"}

    # the open route is bounded: 64 KiB a request, 10 at once then 1/s per client address
    async with aiohttp.ClientSession() as http:
        async with http.post(n1.https + "/meshd/v1/join", ssl=False, data=b"{" + b" " * 70_000 + b"}",
                             headers={"Content-Type": "application/json"}) as response:
            assert response.status == 413, await response.text()

        async def post() -> tuple[int, str | None]:
            async with http.post(n1.https + "/meshd/v1/join", ssl=False, json={"token": "x"}) as response:
                return response.status, response.headers.get("Retry-After")

        answers = await asyncio.gather(*(post() for _ in range(30)))
    assert {code for code, _ in answers} == {400, 429}, answers
    assert all(int(retry or 0) >= 1 for code, retry in answers if code == 429)


async def test_a_single_node_has_no_tokens_and_no_join(tmp_path: Path) -> None:
    """Without --store there is no cluster to join: the routes say so (no crash, nothing made)."""
    agent = await started_agent(agent_options(tmp_path, f"join-single-{os.getpid()}", driver="process"))
    try:
        url = f"http://{agent.options.api}"
        async with aiohttp.ClientSession() as http:
            async with http.post(url + "/meshd/v1/tokens", json={"ttl": "1h"},
                                 headers=api_headers(agent, "application/json")) as response:
                body = await response.json()
            assert response.status == 400 and "not in a cluster" in body["message"], body
            async with http.post(url + "/meshd/v1/join", json={"token": "abcdef.0123456789abcdef", "node": "n2",
                                                               "csr": "x"}) as response:
                body = await response.json()
            assert response.status == 503 and "not in a cluster" in body["message"], body
            async with http.get(url + "/meshd/v1/join/proof", params={"id": "abcdef", "nonce": "00" * 16}) as response:
                assert response.status == 503
    finally:
        await agent.close(stop_pods=True)

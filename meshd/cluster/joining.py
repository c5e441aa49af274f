"""`meshd agent --join TOKEN`: finds an agent of the cluster (DNS-SD, or `--server https://HOST:PORT` as k3s'),
has it prove it knows the token's secret (an HMAC of a fresh nonce and its TLS certificate: see
meshd.api.join) before sending the token over TLS pinned to that certificate, asks it to admit this node with
the token and a CSR, keeps what it answers (the cluster CA, this node's
certificate and key, 0600, in STATE/cluster/) and returns the store's address, as `--store` would give it,
with etcd's CA and client certificate when the cluster's etcd speaks TLS (meshd.cluster.storecreds).

A refusal ends the join with the server's reason. An agent that answers "unknown token" may be of another
cluster on the LAN: the others advertised are tried until the discovery timeout."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from meshd.cluster import tokens
from meshd.cluster.discovery import Interfaces, browse
from meshd.cluster.joinca import make_key_and_csr, write_private
from meshd.cluster.storecreds import StoreCredentials, saved_tls
from meshd.cluster.storecreds import save_credentials as save_store_credentials
from meshd.store.etcdclient import parse_store_url
from meshd.store.etcdtls import StoreTls

log = logging.getLogger(__name__)

CREDENTIALS_DIR = "cluster"  # STATE/cluster/: ca.crt, node.crt, node.key, store (+ store-ca.crt, store.crt, store.key)
JOIN_PATH = "/meshd/v1/join"  # on the agent's API (meshd.api.join)
PROOF_PATH = "/meshd/v1/join/proof"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class JoinError(Exception):
    """This node cannot join; the message says why and what to do."""


class JoinRefused(JoinError):
    """The cluster refused this node: `cause` as the server gave it (UnknownToken, WrongSecret, Expired...)."""

    def __init__(self, api: str, message: str, cause: str) -> None:
        super().__init__(f"{api} refused to admit this node: {message}")
        self.api, self.cause = api, cause


@dataclass(frozen=True)
class JoinAnswer:
    store: str
    ca: str
    certificate: str
    store_tls: StoreCredentials | None = None  # etcd's CA and a client certificate (a TLS etcd)


@dataclass(frozen=True)
class JoinedStore:
    """The store a join gave: its URL and the TLS files to reach it with (as --store-ca/--store-cert/--store-key)."""

    url: str
    tls: StoreTls = StoreTls()


def server_url(text: str) -> str:
    """`--server`: https://HOST:PORT or HOST:PORT -> https://HOST:PORT (ValueError otherwise)."""
    value = text.strip().rstrip("/")
    if value.startswith("http://"):
        raise ValueError(f"--server {text}: the join goes over https:// (the agent's API serves both)")
    value = value.removeprefix("https://")
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in value:
        raise ValueError(f"--server {text!r}: expected https://HOST:PORT (an agent's API)")
    return f"https://{value}"


def refusal(api: str, status: int, body: Any) -> JoinRefused:
    """A refusal (a v1 Status) as the joining node reports it."""
    message = body.get("message") if isinstance(body, dict) else None
    causes = ((body.get("details") or {}).get("causes") or [{}]) if isinstance(body, dict) else [{}]
    cause = str(causes[0].get("reason") or (body.get("reason") if isinstance(body, dict) else "") or status)
    return JoinRefused(api, str(message or f"HTTP {status}"), cause)


def check_proof(api: str, token: tokens.BootstrapToken, nonce: str, status: int, body: Any) -> str:
    """The certificate (SHA-256, hex) the agent proved it serves for a holder of the token's secret; JoinRefused
    when it refuses the token or its proof does not match this token's secret."""
    if status != 200:
        raise refusal(api, status, body)
    fingerprint = str(body.get("certificateSHA256") or "").lower() if isinstance(body, dict) else ""
    proof = str(body.get("proof") or "") if isinstance(body, dict) else ""
    if not _SHA256.match(fingerprint) or not tokens.proof_matches(token, nonce, fingerprint, proof):
        raise JoinRefused(api, f'bootstrap token "{token.id}": wrong secret (the agent knows another secret for '
                               "this id: check the token as `meshd token create` printed it), or the agent is not "
                               "genuine; the token was not sent", "WrongSecret")
    return fingerprint


def parse_answer(api: str, status: int, body: Any) -> JoinAnswer:
    """The join endpoint's answer, or JoinRefused with its reason (a v1 Status)."""
    if status == 200 and isinstance(body, dict):
        store, ca, cert = body.get("store"), body.get("ca"), body.get("certificate")
        if isinstance(store, str) and isinstance(ca, str) and isinstance(cert, str):
            try:
                endpoints = parse_store_url(store)
            except ValueError as error:
                raise JoinError(f"{api} answered a store address that is not one: {error}") from None
            store_tls = None
            if body.get("storeTLS") is not None:
                if not endpoints[0].startswith("https://"):
                    raise JoinError(f"{api} answered TLS files for a plain-HTTP store {store}")
                try:
                    store_tls = StoreCredentials.from_json(body["storeTLS"])
                except ValueError as error:
                    raise JoinError(f"{api} answered the store's TLS files wrong: {error}") from None
            return JoinAnswer(store, ca, cert, store_tls)
        raise JoinError(f"{api} answered the join without a store, CA and certificate: is it a meshd agent?")
    raise refusal(api, status, body)


async def _body(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except ValueError:
        return None


async def request_join(http: aiohttp.ClientSession, api: str, token: str, node: str, csr: bytes) -> JoinAnswer:
    """The proof, then the join request over TLS pinned to the certificate proved (the joining node has no CA
    yet: it gets it in the answer)."""
    parsed = tokens.parse(token)
    nonce = secrets.token_hex(16)
    try:
        async with http.get(api + PROOF_PATH, params={"id": parsed.id, "nonce": nonce}, ssl=False) as response:
            fingerprint = check_proof(api, parsed, nonce, response.status, await _body(response))
        async with http.post(api + JOIN_PATH, json={"token": token, "node": node, "csr": csr.decode()},
                             ssl=aiohttp.Fingerprint(bytes.fromhex(fingerprint))) as response:
            return parse_answer(api, response.status, await _body(response))
    except aiohttp.ServerFingerprintMismatch:
        raise JoinError(f"{api} presented another TLS certificate than the one it proved: the token was not "
                        "sent") from None
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        raise JoinError(f"cannot reach {api}: {error or type(error).__name__}") from None


def saved_store(state_dir: Path) -> str | None:
    """The store a previous join gave (an agent restarted with --join keeps its cluster)."""
    try:
        return (state_dir / CREDENTIALS_DIR / "store").read_text().strip() or None
    except OSError:
        return None


def forget_store(state_dir: Path) -> Path | None:
    """After this node was deleted from its cluster: the store a join gave is moved aside (`store.deleted`), so a
    restart with --join joins again with a fresh token instead of coming back by itself. None if it never joined."""
    saved = state_dir / CREDENTIALS_DIR / "store"
    if not saved.exists():
        return None
    target = saved.with_name("store.deleted")
    saved.replace(target)
    return target


def save_credentials(state_dir: Path, answer: JoinAnswer, key_pem: bytes) -> Path:
    directory = state_dir / CREDENTIALS_DIR
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    save_store_credentials(directory, answer.store_tls or StoreCredentials())  # before `store`: it marks a join done
    for name, data in (("node.key", key_pem), ("node.crt", answer.certificate.encode()),
                       ("ca.crt", answer.ca.encode()), ("store", answer.store.encode() + b"\n")):
        write_private(directory / name, data)
    return directory


async def join_cluster(token: str, *, node: str, state_dir: Path, server: str | None = None,
                       interfaces: Interfaces | None = "all", timeout: float = 15.0) -> JoinedStore:
    """Joins and returns the store's address and TLS files; JoinError (JoinRefused) says why not."""
    try:
        tokens.parse(token)
    except ValueError as error:
        raise JoinError(f"--join: {error}") from None
    previous = saved_store(state_dir)
    if previous is not None:
        log.info("already joined: using the store %s from %s (remove it to join again)", previous,
                 state_dir / CREDENTIALS_DIR / "store")
        return JoinedStore(previous, saved_tls(state_dir / CREDENTIALS_DIR))
    key_pem, csr = await asyncio.to_thread(make_key_and_csr, node)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        if server is not None:
            answer = await request_join(http, server, token, node, csr)
        else:
            if interfaces is None:
                raise JoinError("--join without --server finds the cluster over mDNS, which --mdns off disables: "
                                "pass --server https://HOST:PORT (an agent of the cluster)")
            answer = await _discover_and_join(http, token, node, csr, interfaces, timeout)
    directory = await asyncio.to_thread(save_credentials, state_dir, answer, key_pem)
    log.info("joined the cluster: store %s; CA, certificate and key in %s%s", answer.store, directory,
             " (and etcd's CA and client certificate: store-ca.crt, store.crt, store.key)" if answer.store_tls else "")
    return JoinedStore(answer.store, saved_tls(directory))


async def _discover_and_join(http: aiohttp.ClientSession, token: str, node: str, csr: bytes,
                             interfaces: Interfaces, timeout: float) -> JoinAnswer:
    refusals: list[JoinRefused] = []
    failures: list[str] = []
    log.info("looking for the cluster's agents over DNS-SD (_meshd._tcp, up to %gs)", timeout)
    peers = browse(interfaces)
    try:
        async with asyncio.timeout(timeout):
            async for peer in peers:
                log.info("found node %s of cluster %s at %s: asking to join", peer.node, peer.cluster, peer.api)
                try:
                    return await request_join(http, peer.api, token, node, csr)
                except JoinRefused as refusal:
                    if refusal.cause != "UnknownToken":  # the token's own cluster said no: that is the answer
                        raise
                    refusals.append(refusal)
                except JoinError as error:
                    failures.append(str(error))
    except TimeoutError:
        pass
    finally:
        with contextlib.suppress(RuntimeError):
            await peers.aclose()
    if refusals:
        raise refusals[0]
    if failures:
        raise JoinError("no agent of the cluster admitted this node within "
                        f"{timeout:g}s: {'; '.join(failures)}")
    raise JoinError(f"no meshd agent found over DNS-SD (_meshd._tcp) within {timeout:g}s: is the first agent "
                    "running with --store and mDNS on this network? Or pass --server https://HOST:PORT")


__all__ = ["PROOF_PATH", "JoinAnswer", "JoinedStore", "check_proof", "JoinError", "JoinRefused", "join_cluster", "parse_answer", "request_join",
           "forget_store", "saved_store", "server_url"]

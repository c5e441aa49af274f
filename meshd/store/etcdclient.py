"""A small asyncio client of etcd v3 through its JSON gRPC gateway (etcd 3.4: `/v3/kv/range`, `/v3/kv/txn`,
`/v3/watch`, `/v3/lease/grant|keepalive|revoke`; keys and values in base64, 64-bit numbers as strings), over
aiohttp, which meshd already uses. Endpoints are tried in turn: one member down costs a retry, not an error.
Every request requires a raft leader (meshd.store.etcdfailover): a member cut off from the others (etcd's
minority) refuses it at once, and the next member is tried; a member gets only its share of the request's time
while another is listed, so a write to a member still forwarding to a dead leader moves on within that share.
Over https:// with an SSL context (meshd.store.etcdtls: the CA that signed etcd's certificate, a client
certificate for `--client-cert-auth`); a TLS disagreement with every member is StoreTlsError, one line.

Only what meshd needs: ranges, transactions (compare-and-swap), a watch stream, and leases."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import aiohttp

from meshd.store.api import PersistError
from meshd.store.etcdfailover import REQUIRE_LEADER, Outcome, attempt_timeout, classify, round_pause
from meshd.store.etcdtls import NO_TLS, StoreTls, tls_reason

log = logging.getLogger(__name__)


class EtcdUnavailable(PersistError):
    """No endpoint of the store answered: nothing was written."""

    status = 503  # what the API answers


class StoreTlsError(EtcdUnavailable):
    """The agent and etcd disagree about TLS (wrong CA, no or untrusted client certificate, http vs https):
    trying again does not help; the message is one line saying which and what to change."""


class EtcdNoQuorum(EtcdUnavailable):
    """Members answered, or took the request, but none had a raft leader or could commit in time: etcd is
    electing one, or the members this agent reaches are cut off from the others (etcd's minority). Nothing was
    written (or, when a member only timed out, it may have been: the store's compare-and-swap tells)."""


class EtcdRefused(PersistError):
    """etcd refused the request itself (too many operations in one transaction, too large): nothing written."""

    status = 413


_HINTS = {
    "too many operations": "a transaction of more objects than etcd's --max-txn-ops (128 by default) allows: "
                           "apply fewer objects at once, or start etcd with a larger --max-txn-ops",
    "request is too large": "more bytes than etcd's --max-request-bytes (1.5 MiB by default) allows: apply fewer "
                            "objects at once, or start etcd with a larger --max-request-bytes",
}


class Compacted(Exception):
    """A watch asked for a revision etcd has compacted away: list again."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"etcd compacted revisions up to {compact_revision}")
        self.compact_revision = compact_revision


# aiohttp >= 3.10 tells a connection that timed out from an answer that did not come (before: both are
# ServerTimeoutError or asyncio.TimeoutError)
_CONNECT_TIMEOUT = getattr(aiohttp, "ConnectionTimeoutError", aiohttp.ServerTimeoutError)

STORE_SCHEMES = {"etcd": "http", "http": "http", "https": "https"}  # etcd:// is plain HTTP, as it always was


def parse_store_url(text: str) -> list[str]:
    """`https://HOST:PORT[,HOST:PORT...]` (TLS), `http://...` or `etcd://...` (plain) as the members' base URLs;
    each member may repeat the scheme (`https://a:2379,https://b:2379`, as etcdctl's --endpoints), all the same
    one. ValueError naming what is wrong."""
    scheme, found, rest = text.partition("://")
    if not found or scheme not in STORE_SCHEMES:
        raise ValueError(f"--store {text!r}: expected https://HOST:PORT[,HOST:PORT...] (or http://, etcd:// for "
                         "plain HTTP)")
    endpoints = []
    for part in rest.rstrip("/").split(","):
        own, has_own, address = part.strip().partition("://")
        if has_own and STORE_SCHEMES.get(own) != STORE_SCHEMES[scheme]:
            raise ValueError(f"--store {text!r}: {part.strip()!r} mixes {own}:// with {scheme}:// (one scheme "
                             "for every member)")
        host, colon, port = (address if has_own else part.strip()).rstrip("/").rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"--store {text!r}: {part!r} is not HOST:PORT")
        endpoints.append(f"{STORE_SCHEMES[scheme]}://{host}:{int(port)}")
    return endpoints


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def prefix_end(prefix: str) -> str:
    """The range_end that selects every key starting with prefix (its last byte plus one)."""
    raw = prefix.encode()
    return b64(raw[:-1] + bytes([raw[-1] + 1]))


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int = 0

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> KeyValue:
        return cls(base64.b64decode(raw.get("key", "")).decode(), base64.b64decode(raw.get("value", "")),
                   int(raw.get("create_revision", 0)), int(raw.get("mod_revision", 0)), int(raw.get("lease", 0)))


@dataclass(frozen=True)
class Attempt:
    """One member tried for one request, and what came of it."""

    endpoint: str
    outcome: Outcome
    text: str  # "ENDPOINT: why" ("" when it answered)
    tls: bool = False  # it failed on TLS


def failure(attempts: list[Attempt]) -> EtcdUnavailable:
    """The error for a request no member could serve: StoreTlsError when every one failed on TLS, EtcdNoQuorum
    when one answered without a leader (or could not commit), else EtcdUnavailable."""
    texts = "; ".join(a.text for a in attempts) or "no time left to try a member"
    if attempts and all(a.tls for a in attempts):
        return StoreTlsError(texts)
    if any(a.outcome in (Outcome.NO_LEADER, Outcome.STALLED) for a in attempts):
        return EtcdNoQuorum("no etcd member this agent reaches could commit it: " + texts)
    return EtcdUnavailable("etcd unreachable: " + texts)


@dataclass(frozen=True)
class WatchEvent:
    deleted: bool
    kv: KeyValue


class EtcdClient:
    def __init__(self, endpoints: list[str], *, timeout: float = 5.0, ssl_context: ssl.SSLContext | None = None,
                 tls: StoreTls = NO_TLS) -> None:
        """`ssl_context` for https:// endpoints (None: the system's CAs, no client certificate); `tls` names the
        files it came from, for error messages."""
        if not endpoints:
            raise ValueError("etcd: no endpoint")
        self.endpoints = list(endpoints)
        self.ssl_context, self.tls = ssl_context, tls
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._current = 0
        self._total = timeout
        self._session: aiohttp.ClientSession | None = None
        self.watching: str | None = None  # the member the watch streams from, while it does
        self.suspects: set[str] = set()  # members whose last attempt failed (cleared when one answers again)

    def verifying_context(self) -> ssl.SSLContext:
        """The context https:// requests use (the system's CAs when none was given)."""
        return self.ssl_context if self.ssl_context is not None else ssl.create_default_context()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def rotate(self) -> None:
        """Uses the next endpoint first from now on (the current one answers but seems cut off)."""
        self._current = (self._current + 1) % len(self.endpoints)

    @property
    def current(self) -> str:
        """The member tried first (the last one that answered)."""
        return self.endpoints[self._current]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POSTs to the current endpoint, then to each other one, each given its share of the client's timeout
        (meshd.store.etcdfailover); while members answer but have no raft leader, or take it and hang (an
        election), round again after a short pause, within the timeout. EtcdNoQuorum when members answered but
        none could serve it, EtcdUnavailable when none answered (StoreTlsError when every one failed on TLS)."""
        total = self._total
        loop = asyncio.get_running_loop()
        deadline = loop.time() + total
        while True:
            data, attempts = await self._round(path, body, total, deadline)
            if data is not None:
                return data
            pause = round_pause([a.outcome for a in attempts], deadline - loop.time())
            if pause is None:
                raise failure(attempts)
            await asyncio.sleep(pause)

    async def survey(self, path: str, body: dict[str, Any], *, timeout: float,
                     first: str | None = None) -> tuple[dict[str, Any] | None, list[Attempt]]:
        """One round over the members, from `first` (else the current one), until one answers: its answer
        (None if none did) and every attempt made, in order (a probe reads what each member said)."""
        start = self.endpoints.index(first) if first in self.endpoints else None
        return await self._round(path, body, timeout, asyncio.get_running_loop().time() + timeout, start=start)

    async def _round(self, path: str, body: dict[str, Any], total: float, deadline: float, *,
                     start: int | None = None) -> tuple[dict[str, Any] | None, list[Attempt]]:
        loop, attempts = asyncio.get_running_loop(), list[Attempt]()
        first = self._current if start is None else start
        for attempt in range(len(self.endpoints)):
            index = (first + attempt) % len(self.endpoints)
            budget = attempt_timeout(total, deadline - loop.time(), len(self.endpoints))
            if budget <= 0:
                break
            data, tried = await self._attempt(self.endpoints[index], path, body, budget)
            if data is not None:
                self._current = index
                self.suspects.discard(tried.endpoint)
                return data, attempts
            self.suspects.add(tried.endpoint)
            attempts.append(tried)
            if self._current == index:  # the next request starts at the next member (unless one moved on already)
                self._current = (index + 1) % len(self.endpoints)
        return None, attempts

    async def _attempt(self, endpoint: str, path: str, body: dict[str, Any],
                       budget: float) -> tuple[dict[str, Any] | None, Attempt]:
        """One POST to one member: its answer, or None and why not (EtcdRefused when etcd refused it itself)."""
        timeout = aiohttp.ClientTimeout(total=budget, sock_connect=min(budget, 2.0))
        try:
            async with self._http().post(endpoint + path, json=body, timeout=timeout, ssl=self._ssl,
                                         headers=REQUIRE_LEADER) as response:
                data = await response.json(content_type=None)
                if response.status == 200:
                    return data, Attempt(endpoint, Outcome.ANSWERED, "")
                message = str(data.get("message") or data.get("error") if isinstance(data, dict) else data)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, OSError) as error:
            if isinstance(error, asyncio.TimeoutError) and not isinstance(error, _CONNECT_TIMEOUT):
                # connected, sent, no answer: a write forwarded to a leader that is gone hangs so
                return None, Attempt(endpoint, Outcome.STALLED, f"{endpoint}: no answer within {budget:.1f}s")
            reason = tls_reason(endpoint, error, self.tls)
            text = reason or f"{endpoint}: {error or type(error).__name__}"
            return None, Attempt(endpoint, Outcome.FAILED, text, tls=reason is not None)
        outcome = classify(response.status, message)
        if outcome is Outcome.REFUSED:  # a request etcd refuses is refused by every member
            hint = next((h for k, h in _HINTS.items() if k in message), "")
            raise EtcdRefused(f"etcd refused the write ({message})" + (f": {hint}" if hint else ""))
        return None, Attempt(endpoint, outcome, f"{endpoint}: {response.status} {message}")

    # --- kv ---------------------------------------------------------------------------------------

    async def range(self, key: str, *, prefix: bool = False) -> tuple[list[KeyValue], int]:
        body: dict[str, Any] = {"key": b64(key)}
        if prefix:
            body["range_end"] = prefix_end(key)
        data = await self.call("/v3/kv/range", body)
        return [KeyValue.parse(kv) for kv in data.get("kvs", [])], int(data["header"]["revision"])

    async def txn(self, compare: list[dict[str, Any]], success: list[dict[str, Any]],
                  failure: list[dict[str, Any]] = ()) -> tuple[bool, int, list[dict[str, Any]]]:  # type: ignore[assignment]
        """(succeeded, the store's revision after it, the responses of the branch taken)."""
        data = await self.call("/v3/kv/txn", {"compare": compare, "success": success, "failure": list(failure)})
        return bool(data.get("succeeded")), int(data["header"]["revision"]), list(data.get("responses", []))

    async def compact(self, revision: int) -> None:
        """Drops the history before `revision` (as the API server compacts every 5 minutes)."""
        try:
            await self.call("/v3/kv/compaction", {"revision": str(revision)})
        except EtcdRefused as error:
            if "compacted" not in str(error):  # already compacted that far: nothing to do
                raise

    # --- leases -----------------------------------------------------------------------------------

    async def grant(self, ttl: int) -> int:
        data = await self.call("/v3/lease/grant", {"TTL": str(ttl)})
        if data.get("error"):
            raise EtcdUnavailable(f"etcd refused a lease: {data['error']}")
        return int(data["ID"])

    async def keepalive(self, lease: int) -> int:
        """Renews the lease; the seconds it has left (0: it has expired or was revoked)."""
        data = await self.call("/v3/lease/keepalive", {"ID": str(lease)})
        return int((data.get("result") or {}).get("TTL", 0))

    async def revoke(self, lease: int) -> None:
        await self.call("/v3/lease/revoke", {"ID": str(lease)})

    # --- watch ------------------------------------------------------------------------------------

    async def watch(self, prefix: str, start_revision: int) -> AsyncGenerator[list[WatchEvent], None]:
        """The changes under prefix from start_revision on, a batch per response, in revision order. Ends (or
        raises EtcdUnavailable) when the member goes away; raises Compacted when start_revision is gone."""
        endpoint = self.endpoints[self._current]
        body = {"create_request": {"key": b64(prefix), "range_end": prefix_end(prefix),
                                   "start_revision": str(start_revision)}}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=2.0, sock_read=None)
        self.watching = endpoint
        try:
            async with self._http().post(endpoint + "/v3/watch", json=body, timeout=timeout, ssl=self._ssl,
                                         headers=REQUIRE_LEADER) as response:
                if response.status != 200:
                    raise EtcdUnavailable(f"etcd watch on {endpoint}: HTTP {response.status}")
                buffer = b""
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if line.strip():
                            events = _watch_response(json.loads(line))
                            if events:
                                yield events
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            self._leave(endpoint)
            reason = tls_reason(endpoint, error, self.tls)
            raise EtcdUnavailable(reason or f"etcd watch on {endpoint}: {error or type(error).__name__}") from None
        except EtcdUnavailable:  # etcd ended it (the member has had no leader for a while, cancelled)
            self._leave(endpoint)
            raise
        finally:
            if self.watching == endpoint:
                self.watching = None
        self._leave(endpoint)  # the stream ended: the member went away

    def _leave(self, endpoint: str) -> None:
        """After a watch on `endpoint` broke: the next member first, unless a call moved on already."""
        if self.endpoints[self._current] == endpoint:
            self.rotate()


def _watch_response(data: dict[str, Any]) -> list[WatchEvent]:
    if "error" in data:
        raise EtcdUnavailable(f"etcd watch: {data['error'].get('message', data['error'])}")
    result = data.get("result") or {}
    if int(result.get("compact_revision", 0)):
        raise Compacted(int(result["compact_revision"]))
    if result.get("canceled"):
        raise EtcdUnavailable(f"etcd cancelled the watch: {result.get('cancel_reason', '')}")
    return [WatchEvent(e.get("type") == "DELETE", KeyValue.parse(e["kv"])) for e in result.get("events", [])]


__all__ = ["Attempt", "Compacted", "EtcdClient", "EtcdNoQuorum", "EtcdRefused", "EtcdUnavailable", "KeyValue", "STORE_SCHEMES", "StoreTlsError",
           "WatchEvent", "b64", "failure", "parse_store_url", "prefix_end"]

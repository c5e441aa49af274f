"""Discovery client: follows the agent's endpoint stream into a ServiceTable, and sends drain acks.

`GET {api}/v1/watch/endpoints?sidecar=ID` with the agent's bearer token (ndjson of Reset/Add/Remove/DoesNotExist, `Synced`, `Heartbeat`),
or `GET {api}/v1/namespaces/{ns}/endpoints/{name}?watch=1` for one Service. On any failure it reconnects
with capped exponential backoff and jitter; meanwhile the table keeps the last known endpoints (the agent
being down never empties the mesh). After a reconnect, Services not in the new snapshot are dropped only
once `Synced` says the snapshot is complete.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import aiohttp

from meshd.model.endpoints import DoesNotExist, Reset, ServiceKey, update_from_json
from meshd.model.ingress import IngressTable
from meshd.tasks import run_supervised

from .services import ServiceTable

log = logging.getLogger(__name__)
DEFAULT_API = "http://127.0.0.1:7700"


def normalize_api(text: str | None) -> str:
    """'host:port' or a URL -> 'http://host:port' (no trailing slash)."""
    text = (text or DEFAULT_API).strip().rstrip("/")
    if "://" not in text:
        text = "http://" + text
    return text


class Backoff:
    """Capped exponential backoff with full jitter; `reset()` after a healthy connection."""

    def __init__(self, *, base: float = 0.1, cap: float = 5.0, rng: random.Random | None = None) -> None:
        self.base, self.cap, self.attempt = base, cap, 0
        self.rng = rng or random.Random()

    def next(self) -> float:
        delay = min(self.cap, self.base * (2**self.attempt))
        self.attempt += 1
        return delay / 2 + self.rng.random() * delay / 2

    def reset(self) -> None:
        self.attempt = 0


class DiscoveryClient:
    """Keeps `table` in step with the agent; `synced` is set once the first full snapshot arrived."""

    def __init__(
        self,
        api: str,
        table: ServiceTable,
        *,
        sidecar_id: str,
        service: ServiceKey | None = None,
        heartbeat_timeout: float = 35.0,
        backoff: Backoff | None = None,
        metrics: str | None = None,
        token: str | None = None,
    ) -> None:
        self.api = normalize_api(api)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.metrics = metrics
        self.table = table
        self.sidecar_id = sidecar_id
        self.service = service
        self.heartbeat_timeout = heartbeat_timeout
        self.backoff = backoff or Backoff()
        self.synced = asyncio.Event()
        self.connected = False
        self.connects = 0
        self._acks: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(maxsize=10000)  # (path, body)
        self._session: aiohttp.ClientSession | None = None
        self.on_ingress: Callable[[IngressTable], None] | None = None  # the node sidecar's Ingress

    @property
    def watch_url(self) -> str:
        who = f"sidecar={quote(self.sidecar_id)}" + (f"&metrics={quote(self.metrics)}" if self.metrics else "")
        who += "&ingress=1" if self.on_ingress is not None else ""  # the Ingress table too
        if self.service is not None:
            ns, name = quote(self.service.namespace), quote(self.service.name)
            return f"{self.api}/v1/namespaces/{ns}/endpoints/{name}?watch=1&{who}"
        return f"{self.api}/v1/watch/endpoints?{who}"

    def drained(self, key: ServiceKey, endpoint: str) -> None:
        """Queue a drain ack (called by the table when a removed endpoint has nothing in flight)."""
        try:
            self._acks.put_nowait(("/v1/drain", {"sidecar": self.sidecar_id, "service": str(key), "endpoint": endpoint}))
        except asyncio.QueueFull:
            log.warning("drain ack queue full; dropping ack for %s %s", key, endpoint)

    def listen_failed(self, address: str, port: int, protocol: str, services: list[str], error: str) -> None:
        """Tell the agent that the OS refused a port (it records an event on each Service), beside the acks."""
        report = {"sidecar": self.sidecar_id, "address": address, "port": port, "protocol": protocol,
                  "services": services, "error": error}  # fmt: skip
        try:
            self._acks.put_nowait(("/v1/listen-failures", report))
        except asyncio.QueueFull:
            log.warning("report queue full; dropping the failure to listen on %s:%d", address, port)

    async def run(self) -> None:
        """Forever: watch, and on failure back off and reconnect. Also sends drain acks."""
        timeout = aiohttp.ClientTimeout(total=None, connect=5, sock_connect=5)
        async with aiohttp.ClientSession(timeout=timeout, headers=self.headers) as session:
            self._session = session
            acks = asyncio.create_task(run_supervised("sidecar drain acks", lambda: self._send_acks(session)))
            try:
                while True:
                    try:
                        await self._watch(session)
                        log.warning("endpoint stream from %s ended; reconnecting", self.api)
                    except asyncio.CancelledError:
                        raise
                    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as e:
                        log.warning(
                            "endpoint stream from %s failed: %s; keeping last known endpoints", self.api, e
                        )
                    self.connected = False
                    await asyncio.sleep(self.backoff.next())
            finally:
                acks.cancel()
                self._session = None

    async def _watch(self, session: aiohttp.ClientSession) -> None:
        url = self.watch_url
        async with session.get(url, headers={"Accept": "application/x-ndjson"}) as resp:
            if resp.status == 401:
                raise ValueError(f"HTTP 401 from {self.watch_url}: the agent wants its token (env MESHD_TOKEN "
                                 "or --token-file)")
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status} from {self.watch_url}")
            self.connected = True
            self.connects += 1
            log.info("following endpoints from %s", url)
            seen: set[ServiceKey] = set()
            synced = False
            buf = b""
            while True:
                chunk = await asyncio.wait_for(resp.content.readany(), self.heartbeat_timeout)
                if not chunk:
                    return
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    synced = self._apply(json.loads(line), seen, synced)
                    if synced:
                        self.backoff.reset()

    def _apply(self, data: dict[str, Any], seen: set[ServiceKey], synced: bool) -> bool:
        kind = data.get("type")
        if kind == "Heartbeat":
            return synced
        if kind == "Ingress":
            if self.on_ingress is not None:
                self.on_ingress(IngressTable.from_json(data))
            return synced
        if kind == "Synced":
            if not synced:
                self.table.retain(seen)
                self.synced.set()
            return True
        update = update_from_json(data)
        if isinstance(update, Reset):
            seen.add(update.service.key)
        self.table.apply(update)
        if self.service is not None and not synced and isinstance(update, Reset | DoesNotExist):
            self.synced.set()  # the single-Service stream starts with its snapshot
            return True
        return synced

    async def _send_acks(self, session: aiohttp.ClientSession) -> None:
        while True:
            path, ack = await self._acks.get()
            url = self.api + path
            for attempt in range(5):
                try:
                    async with session.post(url, json=ack, timeout=aiohttp.ClientTimeout(total=3)) as resp:
                        if resp.status < 500:
                            if resp.status >= 400:
                                log.warning("%s %s refused: HTTP %s", path, ack, resp.status)
                            break
                except (aiohttp.ClientError, OSError, TimeoutError) as e:
                    log.debug("%s %s failed: %s", path, ack, e)
                await asyncio.sleep(0.2 * (attempt + 1))

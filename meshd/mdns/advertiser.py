"""Publishes the registry's Services on the LAN over mDNS/DNS-SD with zeroconf, following every registry change.

Decide (`desired_adverts`, `plan_changes`), then act (register/update/unregister on AsyncZeroconf), in one serial
worker: a burst of registry updates wakes it once, and it re-reads the registry, so it never acts on stale state.
Unregistering sends goodbye packets (TTL 0), so browsers drop a Service at once when its last endpoint goes.
An inactive advertiser (a cluster agent that does not lead: one advertises for the cluster) publishes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

from prometheus_client import Counter, Gauge
from zeroconf import InterfaceChoice, IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from meshd.mdns.adverts import Advert, desired_adverts, plan_changes
from meshd.metrics import REGISTRY
from meshd.model.endpoints import Update
from meshd.registry.registry import Registry
from meshd.tasks import run_supervised

log = logging.getLogger(__name__)

ANNOUNCEMENTS = Counter(
    "meshd_mdns_announcements",
    "DNS-SD adverts registered, updated or unregistered (goodbye) by the mDNS advertiser.",
    ["action"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "meshd_mdns_errors", "mDNS advertiser operations that failed (retried later).", registry=REGISTRY
)
SERVICES = Gauge("meshd_mdns_services", "DNS-SD adverts currently published by this node.", registry=REGISTRY)
for _action in ("register", "update", "unregister"):
    ANNOUNCEMENTS.labels(_action)

Interfaces = Sequence[str] | Literal["all"]


class MdnsAdvertiser:
    """Keeps the node's DNS-SD adverts equal to `desired_adverts(registry)` from `start()` until `close()`."""

    def __init__(
        self,
        registry: Registry,
        *,
        interfaces: Interfaces = "all",
        node_name: str,
        host_address: str | None = None,
        retry_delay: float = 2.0,
        zeroconf_factory: Callable[[], AsyncZeroconf] | None = None,
        active: bool = True,
    ) -> None:
        self._registry = registry
        self._active = active
        self._interfaces = interfaces
        self._node_name = node_name
        self._host_address = host_address
        self._retry_delay = retry_delay
        self._zeroconf_factory = zeroconf_factory
        self._zc: AsyncZeroconf | None = None
        self._published: dict[str, tuple[Advert, AsyncServiceInfo]] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stop_listening: Callable[[], None] | None = None
        self._retry: asyncio.TimerHandle | None = None

    @property
    def published(self) -> dict[str, Advert]:
        """The adverts on the network now, by advert name (the name browsers see)."""
        return {str(info.name): advert for advert, info in self._published.values()}

    def set_active(self, active: bool) -> None:
        """Advertise (this agent leads, or is alone) or withdraw everything with goodbyes (another one leads)."""
        if active != self._active:
            self._active = active
            log.info("mDNS: %s", "advertising the cluster's Services" if active else "another agent advertises")
            self._wake.set()

    async def start(self) -> None:
        """Starts following the registry; the worker opens the mDNS sockets (a failure is logged and retried)."""
        if self._task is not None:
            return
        self._stop_listening = self._registry.listen(self._on_update)
        self._start_worker()
        self._wake.set()

    def _start_worker(self) -> None:
        self._task = asyncio.create_task(run_supervised("mdns-advertiser", self._run_woken), name="mdns-advertiser")

    async def _run_woken(self) -> None:
        """The worker, woken at once when it starts (again after a crash): it re-reads the whole registry."""
        self._wake.set()
        try:
            await self._run()
        except Exception:
            ERRORS.inc()
            raise

    async def close(self) -> None:
        """Withdraws every advert (goodbye packets, awaited) and closes the sockets."""
        if self._stop_listening:
            self._stop_listening()
            self._stop_listening = None
        if self._retry:
            self._retry.cancel()
        if self._task:
            task, self._task = self._task, None  # None first: a cancelled worker is not restarted
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._zc is None:
            return
        await asyncio.gather(*(self._unregister(key) for key in list(self._published)))
        try:
            await self._zc.async_close()
        except Exception:
            log.exception("mDNS: closing zeroconf failed")
        self._zc = None
        SERVICES.set(0)

    async def wait_idle(self) -> None:
        """Returns once the worker has acted on every registry update so far (retries may still be pending)."""
        while True:
            await self._idle.wait()
            if self._idle.is_set() and not self._wake.is_set():
                return
            await asyncio.sleep(0)  # the worker has been woken but has not run yet

    # --- worker ------------------------------------------------------------------------------------------

    def _on_update(self, _update: Update) -> None:
        self._wake.set()  # coalesce: the worker re-reads the whole registry once per wake-up

    async def _run(self) -> None:
        while True:
            self._idle.set()
            await self._wake.wait()
            self._idle.clear()
            self._wake.clear()
            try:
                if self._zc is None:  # opened here, so a bad interface is logged and retried, not fatal
                    self._zc = self._open_zeroconf()
                ok = await self._reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:  # the worker must outlive any bug or network error: log, count, retry
                log.exception("mDNS: reconcile failed")
                ERRORS.inc()
                ok = False
            if not ok:
                self._schedule_retry()

    async def _reconcile(self) -> bool:
        registry = self._registry
        services = registry.services() if self._active else []
        desired = desired_adverts(
            services,
            {s.key: registry.ready_endpoints(s.key) for s in services},
            node_name=self._node_name,
            host_address=self._host_address,
        )
        changes = plan_changes(desired, {key: advert for key, (advert, _) in self._published.items()})
        if not changes:
            return True
        # Goodbyes first, then updates, then new names (registration probes the network for ~1 s).
        results = list(await asyncio.gather(*(self._unregister(key) for key in changes.unregister)))
        results += await asyncio.gather(*(self._update(advert) for advert in changes.update))
        results += await asyncio.gather(*(self._register(advert) for advert in changes.register))
        return all(results)

    def _open_zeroconf(self) -> AsyncZeroconf:
        if self._zeroconf_factory is not None:
            return self._zeroconf_factory()
        if self._interfaces == "all":
            return AsyncZeroconf(interfaces=InterfaceChoice.All, ip_version=IPVersion.V4Only)
        return AsyncZeroconf(interfaces=list(self._interfaces))

    def _schedule_retry(self) -> None:
        if (
            self._retry is None
            or self._retry.cancelled()
            or self._retry.when() < asyncio.get_running_loop().time()
        ):
            self._retry = asyncio.get_running_loop().call_later(self._retry_delay, self._wake.set)

    # --- actions (each logs its own failure and reports success) ----------------------------------------

    async def _register(self, advert: Advert) -> bool:
        assert self._zc is not None
        zc, info = self._zc, _service_info(advert)

        async def register() -> None:
            # allow_name_change: another responder owning the name (another node) must not silence this one.
            broadcast = await zc.async_register_service(info, allow_name_change=True)
            self._published[advert.name] = (advert, info)
            SERVICES.set(len(self._published))
            await broadcast

        if not await _announce("register", advert.name, register):
            return False
        log.info("mDNS: advertising %s at %s:%d", info.name, ",".join(advert.addresses), advert.port)
        return True

    async def _update(self, advert: Advert) -> bool:
        assert self._zc is not None
        zc, (_, old) = self._zc, self._published[advert.name]
        info = _service_info(advert, name=str(old.name))  # keep a name zeroconf may have changed on conflict

        async def update() -> None:
            broadcast = await zc.async_update_service(info)
            self._published[advert.name] = (advert, info)
            await broadcast

        return await _announce("update", advert.name, update)

    async def _unregister(self, key: str) -> bool:
        assert self._zc is not None
        zc, (_, info) = self._zc, self._published.pop(key)
        SERVICES.set(len(self._published))

        async def unregister() -> None:
            await (await zc.async_unregister_service(info))

        if not await _announce("unregister", str(info.name), unregister):
            return False
        log.info("mDNS: withdrew %s", info.name)
        return True


_GERUNDS = {"register": "registering", "update": "updating", "unregister": "unregistering"}


async def _announce(action: str, name: str, step: Callable[[], Awaitable[None]]) -> bool:
    """Runs one zeroconf action: counted when it succeeds, logged and counted as an error when it fails."""
    try:
        await step()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("mDNS: %s %s failed", _GERUNDS[action], name)
        ERRORS.inc()
        return False
    ANNOUNCEMENTS.labels(action).inc()
    return True


def _service_info(advert: Advert, *, name: str | None = None) -> AsyncServiceInfo:
    return AsyncServiceInfo(
        advert.type_,
        name or advert.name,
        port=advert.port,
        properties=dict(advert.properties),
        server=advert.server,
        parsed_addresses=list(advert.addresses),
    )

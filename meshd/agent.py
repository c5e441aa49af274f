"""The agent: wires driver, controller, registry, DNS, mDNS, the API and the node's sidecar together.

`run_agent` is `meshd agent` (foreground; on SIGINT/SIGTERM it stops serving but leaves pods running for the
next agent to adopt); `run_up` is `meshd up -f` (agent + apply; Ctrl-C drains and removes everything).
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import hashlib
import ipaddress
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from meshd.api.auth import load_or_create_token
from meshd.model.security import SecuritySupport
from meshd.cluster.servicerange import (
    ServiceRangeError,
    cluster_service_range,
    parse_service_range,
    stale_range_addresses,
)
from meshd.controller.backoff import BackoffPolicy
from meshd.controller.loop import Controller, NodeCapacity
from meshd.controller.metrics import register_controller_metrics
from meshd.controller.pod import PodWorker
from meshd.controller.probes import prober_factory
from meshd.slotreaddress import readdress_services
from meshd.driver import DriverError, make_driver
from meshd.external.hostaddresses import host_ipv4_addresses
from meshd.external.listeners import expand_wildcards, parse_external
from meshd.health import CheckResult, HealthChecks, LoopLagMonitor, state_writable
from meshd.hostslots import (
    DOCKER_SERVICE_POOL,
    SlotError,
    SlotLease,
    default_run_dir,
    listening_addresses,
    service_slot_pool,
    slot_states,
    stale_addresses,
)
from meshd.manifests.quantity import parse_cpu, parse_memory
from meshd.mdns import (  # imported before the loop runs: zeroconf's import blocks
    MdnsAdvertiser,
    parse_mdns_option,
)
from meshd.metrics import REGISTRY
from meshd.model.endpoints import ServiceKey
from meshd.registry import Registry
from meshd.registry.addresses import AddressAllocator
from meshd.registry.drain import DrainCoordinator
from meshd.controller.ingress import listen_address
from meshd.sidecar_process import SidecarProcess
from meshd.slottaking import take_slot
from meshd.state import API_ADDRESS_FILE, SOCKET_FILE, api_address_of, default_state_dir, write_atomically
from meshd.store import StoreError
from meshd.tasks import TaskGroup

if TYPE_CHECKING:
    from meshd.cluster.discovery import ClusterAdvertiser
    from meshd.cluster.member import ClusterMember
    from meshd.api.certs import TlsFiles
    from meshd.api.server import ApiServer
    from meshd.dns.server import DnsServer
    from meshd.hostnames import HostNames

log = logging.getLogger("meshd")

DOCKER_GATEWAY = "10.213.0.1"


@dataclass
class AgentOptions:
    api: str = "127.0.0.1:7700"
    dns: str = "127.0.0.1:8600"
    zone: str = "cluster.local"
    state_dir: str | None = None
    driver: str = "docker"
    mdns: str = "all"
    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    node_cpus: str | None = None
    node_memory: str | None = None
    max_pods: int = 110  # the kubelet's default: pods beyond it stay Pending ("Too many pods")
    verbose: bool = False
    dns_ttl: int = 5
    dns_upstream: str = ""  # ExternalName targets outside the zone are asked here ("": resolv.conf; "off")
    sidecar: bool = True
    sidecar_metrics: str | None = None  # default: 127.0.0.1:7701 + this agent's host slot
    drain: bool = True  # wait for the sidecars to drain a pod before stopping it (off only to compare)
    agent_id: str | None = None  # default: derived from the state dir, so two agents on one engine keep apart
    max_loop_lag: float = 1.0  # /healthz fails while the event loop runs this late
    cron_minute: float = 60.0  # seconds a CronJob schedule's minute lasts (less: a fast clock, for tests)
    host_names: str | None = None  # auto|resolved|hosts|off; None: $MESHD_HOST_NAMES, else auto
    store: str | None = None  # https://HOST:PORT[,...] (http://, etcd:// plain): a shared store (None: STATE/store.db)
    store_ca: str | None = None  # --store-ca FILE: the CA that signed etcd's certificate (https:// only)
    store_cert: str | None = None  # --store-cert FILE, --store-key FILE: the client certificate etcd asks for
    store_key: str | None = None
    node_name: str | None = None  # default: the host name
    node_grace: float = 6.0  # a node whose Lease is older than this is NotReady
    leader_ttl: int = 5  # seconds: a dead leader is replaced within this
    pod_eviction_timeout: float = 5.0  # seconds a node stays NotReady before its pods are replaced elsewhere
    ingress_http: str | None = None  # ADDR:PORT|off; None: the external address, port 80
    ingress_https: str | None = None  # ADDR:PORT|off; None: the external address, port 443
    external: str | None = None  # --external ADDR[,ADDR]: LoadBalancer, NodePort and hostPort listen there
    allow_privileged: bool = False  # run pods asking for privileged, hostPID, hostIPC (else refused at apply)
    mesh_port: int = 4143  # with --store: the sidecar's mesh gateway (mutual TLS between nodes) on the InternalIP
    cert_validity: float = 86400.0  # with --store: node certificates' life, seconds (issued again at 2/3 of it)
    join: str | None = None  # --join TOKEN: a bootstrap token; without --store, the store comes from the join
    server: str | None = None  # --server https://HOST:PORT: join through this agent (no DNS-SD discovery)
    join_timeout: float = 15.0  # how long --join looks for the cluster over DNS-SD
    token_ttl: float = 24 * 3600.0  # the first join token's lifetime (the agent that creates the cluster)
    keep_expired_tokens: float = 3600.0  # an expired bootstrap token's Secret is deleted this long after it expired
    service_cluster_ip_range: str | None = None  # CIDR; with --store, the cluster's (its first agent's choice)


def split_host_port(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    text = text.removeprefix("http://")
    host, _, port = text.rstrip("/").rpartition(":")
    return (host or default_host).strip("[]"), int(port)


class Agent:
    def __init__(self, options: AgentOptions) -> None:
        self.options = options
        self.state_dir = Path(options.state_dir).expanduser() if options.state_dir else default_state_dir()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.token = load_or_create_token(self.state_dir)  # the API's bearer token, the same across restarts
        self.agent_id = options.agent_id or hashlib.sha256(str(self.state_dir.resolve()).encode()).hexdigest()[:12]
        self.node = options.node_name or socket.gethostname()
        self.registry = Registry(node=self.node)
        self.drain = DrainCoordinator(self.registry)
        driver_opts: dict = {"agent_id": self.agent_id}
        if options.driver == "process":
            driver_opts["state_dir"] = self.state_dir / "process"
        self.driver = make_driver(options.driver, **driver_opts)
        self.api_host, self.api_port = split_host_port(options.api)
        self.controller = Controller(
            driver=self.driver,
            registry=self.registry,
            state_dir=self.state_dir,
            agent_id=self.agent_id,
            service_pool=DOCKER_SERVICE_POOL,  # narrowed to this agent's slot in start()
            capacity=NodeCapacity(
                cpu_millicores=parse_cpu(options.node_cpus) if options.node_cpus else (os.cpu_count() or 1) * 1000,
                memory_bytes=parse_memory(options.node_memory) if options.node_memory else _memory_bytes(),
                pods=options.max_pods,
            ),
            backoff=BackoffPolicy(initial=options.backoff_initial, maximum=options.backoff_max),
            zone=options.zone,
            make_prober=prober_factory(self.driver),
            drain=self._drain_pod,
            on_service_address=self._service_address,
            external=expand_wildcards(parse_external(options.external), host_ipv4_addresses(),
                                      exclude=(f"{DOCKER_GATEWAY}/16",)),  # fmt: skip
            security=SecuritySupport(driver=options.driver, allow_privileged=options.allow_privileged,
                                     agent_uid=os.geteuid(), agent_gid=os.getegid()),
            cron_minute=options.cron_minute,
        )
        self._metrics = register_controller_metrics(self.controller)
        self.sidecar = SidecarProcess(
            state_dir=self.state_dir,
            api_url=f"http://{self.api_host}:{self.api_port}",
            metrics=options.sidecar_metrics or "127.0.0.1:7701",
            metrics_fixed=options.sidecar_metrics is not None,
            token=self.token,
        )
        external = (tuple(self.controller.external) or ("127.0.0.1",))[0]  # the Ingress: the first external address
        self.ingress_http = listen_address(options.ingress_http, external, 80)
        self.ingress_https = listen_address(options.ingress_https, external, 443)
        self.external = external
        for flag, where in (("--ingress-http", self.ingress_http), ("--ingress-https", self.ingress_https)):
            self.sidecar.extra_args += [flag, f"{where[0]}:{where[1]}" if where else "off"]
        self.sidecar.extra_args += ["--node", self.node]  # PreferClose: the endpoints on this node first
        self.slot: SlotLease | None = None
        self.dns: DnsServer | None = None
        self.mdns: MdnsAdvertiser | None = None
        self.api: ApiServer | None = None
        self.tls: TlsFiles | None = None  # the API's CA and serving certificate, once started
        self._address_tasks = TaskGroup("service address")
        self._tasks = TaskGroup("agent")
        self.loop_lag = LoopLagMonitor()
        self.health = HealthChecks()
        self.health.add("state", state_writable(self.state_dir))  # the state store may hook its own check here
        self.health.add("loop", self.loop_lag.check(options.max_loop_lag))
        if options.sidecar:
            self.health.add("sidecar", self._sidecar_connected)
        self.host_names: HostNames | None = None
        self._own_resolver: str | None = None  # this agent's pods' resolver when another agent holds the gateway
        self.cluster: ClusterMember | None = None
        self.cluster_advert: ClusterAdvertiser | None = None  # _meshd._tcp, for nodes joining (--join)
        self.cluster_range: ipaddress.IPv4Network | None = None  # with --store: the cluster's Service range
        if options.store:
            from meshd.api.kube import pod as kube_pod
            from meshd.cluster.member import ClusterMember, ClusterOptions
            from meshd.store.etcdtls import StoreTls

            mesh_dir = self.state_dir / "mesh"
            self.cluster = ClusterMember(ClusterOptions(options.store, self.node, options.node_grace,
                                                        options.leader_ttl, mesh_dir=str(mesh_dir),
                                                        mesh_port=options.mesh_port,
                                                        cert_validity=options.cert_validity,
                                                        pod_eviction_timeout=options.pod_eviction_timeout,
                                                        keep_expired_tokens=options.keep_expired_tokens,
                                                        store_tls=StoreTls(options.store_ca, options.store_cert,
                                                                           options.store_key)),
                                         self.controller, self._node_object, render_pod=kube_pod)
            self.sidecar.extra_args += ["--mesh-dir", str(mesh_dir), "--mesh-listen",
                                        f"{self.api_host}:{options.mesh_port}"]
            self.health.add("store", self.cluster.check)
        self._started = time.time()

    def _node_object(self) -> dict:
        """This agent's Node as it registers it in a shared store (meshd.cluster.heartbeat)."""
        from meshd.api.cluster import node

        capacity = self.controller.capacity
        return node(self.node, created=self._started, cpu_millicores=capacity.cpu_millicores,
                    memory_bytes=capacity.memory_bytes, address=self.api_host,
                    runtime=getattr(self.driver, "name", "unknown"))

    async def _drain_pod(self, worker: PodWorker, grace: float) -> None:
        if self.options.drain:
            await self.drain.wait(worker.namespace, worker.name)

    def _service_address(self, address: str, present: bool) -> None:
        """Adds (or removes) a Service's address on the meshd bridge so the sidecar can listen there."""
        verb = getattr(self.driver, "add_service_address" if present else "remove_service_address", None)
        if verb is None:
            return

        async def run() -> None:
            try:
                await verb(address)
            except DriverError as error:
                log.warning("service address %s: %s", address, error)

        self._address_tasks.spawn(run(), name=f"{'add' if present else 'remove'} {address}")

    def _sidecar_connected(self) -> CheckResult:
        """The node sidecar runs and follows this agent's endpoint stream."""
        if not self.sidecar.pid:
            return CheckResult("sidecar", False, "the node sidecar is not running")
        if not any(s.startswith("node-") for s in self.drain.sidecars):
            return CheckResult("sidecar", False, f"the node sidecar (pid {self.sidecar.pid}) is not connected")
        return CheckResult("sidecar", True)

    async def start(self) -> None:
        from meshd.api.certs import api_tls, wanted_names
        from meshd.api.server import ApiServer

        log.info("meshd agent %s: driver %s, state %s", self.agent_id, self.options.driver, self.state_dir)
        self._tasks.supervise("loop lag", self.loop_lag.run)
        await asyncio.to_thread(self.state_dir.mkdir, parents=True, exist_ok=True)
        await self._take_slot()
        await self._start_driver()
        await self._start_dns()  # before any pod is made: it decides the pods' resolver
        if self.cluster is not None:
            await self.cluster.open_store()
            await self._use_cluster_range()
        else:
            from meshd.cluster.member import single_node_metrics

            single_node_metrics()
            from meshd.api.kube import pod as kube_pod
            from meshd.cluster.podobjects import PodObjects

            self.controller.pod_objects = PodObjects(self.controller, self.node, kube_pod, time.time)
        await self.controller.start()
        self._tasks.spawn(self._reclaim_service_addresses(), name="reclaim addresses")
        self.api = api = ApiServer(controller=self.controller, registry=self.registry, drain=self.drain,
                                   sidecar_targets=self.sidecar.targets, token=self.token, health=self.health)
        api.ingress.address = self.ingress_http[0] if self.ingress_http else (
            self.ingress_https[0] if self.ingress_https else self.external)
        api.ingress.http_port = self.ingress_http[1] if self.ingress_http else None
        api.ingress.https_port = self.ingress_https[1] if self.ingress_https else None
        files, context = await asyncio.to_thread(api_tls, self.state_dir, wanted_names(self.api_host))
        self.tls = files
        await api.start(self.api_host, self.api_port, unix_socket=self.state_dir / SOCKET_FILE, tls=context)
        await asyncio.to_thread(write_atomically, self.state_dir / API_ADDRESS_FILE,  # for `meshd kubeconfig`
                                api_address_of(self.api_host, self.api_port).encode())
        if self.cluster is not None:
            api.node_grace = self.options.node_grace
            self.cluster.start()
            log.info("node %s in the cluster on %s", self.node, self.options.store)
            await self._serve_joins(api)
        log.info("API on https:// and http://%s:%d (CA %s, bearer token in %s; /metrics and /healthz open) and on "
                 "%s (owner only)", self.api_host, self.api_port, files.ca, self.state_dir / "token",
                 self.state_dir / SOCKET_FILE)
        await self._start_mdns()
        if self.options.sidecar:
            await self.sidecar.start()
        await self._start_host_names()

    async def _serve_joins(self, api: ApiServer) -> None:
        from meshd.cluster.joinsetup import JoinSetup, serve_joins

        from meshd.cluster.meshcerts import ClusterCaIssuer

        assert self.cluster is not None and self.cluster.store is not None and self.options.store is not None
        issuer = ClusterCaIssuer(self.cluster.store, validity=datetime.timedelta(seconds=self.options.cert_validity))
        self.cluster_advert = await serve_joins(JoinSetup(
            self.cluster.store, self.options.store, self.node, self.state_dir, self.api_host, self.api_port,
            parse_mdns_option(self.options.mdns), self.options.token_ttl, host_ipv4_addresses(),
            self.tls.cert if self.tls else None, issue=issuer,
            store_tls=self.cluster.options.store_tls), api.join)
        if self.cluster_advert is not None:
            self._tasks.spawn(self.cluster_advert.start(), name="DNS-SD advert")

    async def _start_host_names(self) -> None:
        """Apps on the host resolve the zone's names: a resolved route to the bridge's DNS, or /etc/hosts."""
        from meshd.hostnames import HostNames

        bridge = getattr(self.driver, "network", None) if self.options.driver == "docker" else None
        self.host_names = HostNames(self.registry, mode=self.options.host_names, zone=self.options.zone,
                                    tag=self.agent_id, link=bridge[:15] if bridge else None,
                                    dns_server=self._own_resolver or DOCKER_GATEWAY if bridge else None)
        await self.host_names.start()

    async def _take_slot(self) -> None:
        """This agent's share of the host (addresses, metrics port), apart from every other live agent's."""
        self.slot = slot = await take_slot(state_dir=self.state_dir, agent_id=self.agent_id)
        ranges = slot.ranges
        if self.options.driver == "process":
            self.driver.pod_network = ipaddress.ip_network(ranges.process_pods)  # type: ignore[attr-defined]
        chosen = self.options.service_cluster_ip_range if self.cluster is None else None  # a cluster's: later
        self.controller.addresses = AddressAllocator(str(parse_service_range(chosen)) if chosen else (
            ranges.docker_services if self.options.driver == "docker" else ranges.process_services))
        if self.options.sidecar_metrics is None:
            self.sidecar.metrics = f"127.0.0.1:{ranges.sidecar_metrics_port}"
        log.info("host slot %d: Service addresses in %s%s, sidecar metrics on %s", slot.slot,
                 self.controller.addresses.pool,
                 f", pods in {ranges.process_pods}" if self.options.driver == "process" else "", self.sidecar.metrics)
        if self.cluster is None:  # a cluster's range is cluster-wide: its addresses never move with the slot
            self.controller.before_load = functools.partial(
                readdress_services, pool=self.controller.addresses.pool,
                slot_pool=ipaddress.IPv4Network(service_slot_pool(self.options.driver)), slot=slot.slot,
                record=self.controller.events.record)

    async def _use_cluster_range(self) -> None:
        """The cluster's Service range (decided by its first agent, kept in the store): this agent allocates and
        serves Service addresses from it, whatever its driver."""
        assert self.cluster is not None and self.cluster.store is not None and self.slot is not None
        self.cluster_range = await cluster_service_range(self.cluster.store, flag=self.options.service_cluster_ip_range,
                                                         default=self.slot.ranges.cluster_services,
                                                         driver=self.options.driver)
        self.controller.addresses = AddressAllocator(str(self.cluster_range))

    async def _reclaim_service_addresses(self) -> None:
        """Removes the Service addresses on the bridge that no live agent owns: those of slots nobody holds
        (agents whose state is gone, or older agents), and this agent's own that no Service has any more."""
        listing = getattr(self.driver, "service_addresses", None)
        if listing is None or self.slot is None or self.options.driver == "process" and self.cluster_range is None:
            return  # a standalone process driver's are in 127/8: nothing on a link to reclaim
        # slots no agent ever held (no lock file) may hold an older agent's addresses, alive: left alone
        known, held = await asyncio.to_thread(slot_states, default_run_dir())
        listening = await asyncio.to_thread(listening_addresses)
        present = await listing()
        stale = stale_addresses(present, known=known, held=held, own=self.slot.slot, mine=self._owned(),
                                listening=listening)
        if self.cluster_range is not None:  # the cluster's range: what a dead agent of this cluster left
            stale += stale_range_addresses(present, self.cluster_range, mine=self._owned(), listening=listening)
        for address in stale:
            if address not in self._owned():  # decided now: a Service applied meanwhile keeps its address
                await self.driver.remove_service_address(address)  # type: ignore[attr-defined]
                log.info("reclaimed the Service address %s (no live agent owns it)", address)

    def _owned(self) -> set[str]:
        """The bridge addresses this agent's Services and pods' resolver have now."""
        return {info.address for info in self.registry.services() if info.address} | {self._own_resolver or ""}

    async def _start_driver(self, retry_every: float = 5.0) -> None:
        """Waits for the container engine: an engine that is down is a clear message, not a crash."""
        while True:
            try:
                await self.driver.start()
                return
            except DriverError as error:
                hint = " (--driver process runs without Docker)" if self.options.driver == "docker" else ""
                log.error("%s; retrying in %.0fs%s", error, retry_every, hint)
                await asyncio.sleep(retry_every)

    async def _start_dns(self) -> None:
        from meshd.dns.server import DnsServer
        from meshd.dns.upstream import Upstream, parse_servers

        servers = parse_servers(self.options.dns_upstream)
        self.dns = dns = DnsServer(self.registry, zone=self.options.zone, ttl=self.options.dns_ttl,
                                   listen=[split_host_port(self.options.dns)],
                                   upstream=None if servers == [] else await asyncio.to_thread(Upstream, servers))
        await dns.start()
        if self.options.driver == "docker":  # the pods' resolver, on the bridge's gateway
            try:
                await dns.listen_on(DOCKER_GATEWAY, 53)
            except OSError as error:  # another agent on this engine holds it
                await self._start_own_resolver(dns, error)

    async def _start_own_resolver(self, dns: DnsServer, error: OSError) -> None:
        """A second agent on one engine: its pods get a resolver address of its own on the bridge (a /32, stable
        per agent), so they resolve this agent's Services, not the other agent's."""
        address = agent_resolver_address(self.agent_id, str(self.controller.addresses.pool))
        try:
            self.controller.addresses.allocate(ServiceKey("kube-system", "meshd-dns"), address)
            await self.driver.add_service_address(address)  # type: ignore[attr-defined]
            await dns.listen_on(address, 53)
        except (OSError, DriverError, ValueError) as second:
            log.warning("pods cannot resolve Service names: DNS on %s:53: %s; on %s:53: %s",
                        DOCKER_GATEWAY, error, address, second)
            return
        self.driver.pod_resolver = address  # type: ignore[attr-defined]
        self._own_resolver = address
        log.warning("DNS on %s:53: %s (another meshd agent on this engine?); this agent's pods use %s:53",
                    DOCKER_GATEWAY, error, address)

    async def _start_mdns(self) -> None:
        interfaces = parse_mdns_option(self.options.mdns)
        if interfaces is None:
            return
        try:
            # in a cluster only the leader advertises (once for the cluster), handing over when leadership moves
            self.mdns = mdns = MdnsAdvertiser(self.registry, interfaces=interfaces, node_name=self.node,
                                              active=self.cluster is None or self.cluster.leading)
            if self.cluster is not None:
                self.cluster.on_leadership.append(mdns.set_active)
            await mdns.start()
        except Exception as error:  # mDNS is best effort: the LAN may not allow it
            log.warning("mDNS disabled: %s", error)
            self.mdns = None

    async def close(self, *, stop_pods: bool) -> None:
        """Stops serving; with stop_pods (meshd up) pods are drained and removed and the sidecar stopped."""
        if self.cluster is not None:
            await self.cluster.close()
        await self.controller.close(stop_pods=stop_pods)
        if stop_pods or self.cluster_range is not None and self.options.driver == "process":  # lo's go too
            for info in self.registry.services():
                if info.address:
                    self._service_address(info.address, False)
        await self._address_tasks.wait()
        await self.sidecar.stop()
        if stop_pods and self._own_resolver:
            self._service_address(self._own_resolver, False)
            await self._address_tasks.wait()
        await self._tasks.close()
        if self.slot is not None:
            self.slot.release()
        for component in (self.host_names, self.mdns, self.cluster_advert, self.dns, self.api):
            if component is not None:
                await component.close()
        await self.driver.close()
        REGISTRY.unregister(self._metrics)


def agent_resolver_address(agent_id: str, pool: str = DOCKER_SERVICE_POOL) -> str:
    """The resolver address of an agent whose pods cannot have the gateway's (another agent holds it): an
    x.y.z.254 of the Service range, the same for the same agent id (its pods keep it across restarts)."""
    network = ipaddress.IPv4Network(pool)
    number = int.from_bytes(hashlib.sha256(f"meshd-dns/{agent_id}".encode()).digest()[:4], "big")
    return str(network.network_address + (number % (network.num_addresses // 256)) * 256 + 254)


def _memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("aiohttp.access", "docker", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def _serve(options: AgentOptions, files: list[str] | None) -> int:
    if options.join and not options.store:  # the store's address comes from the cluster, for the token
        from meshd.cluster.joining import JoinError, join_cluster

        try:
            joined = await join_cluster(
                options.join, node=options.node_name or socket.gethostname(), server=options.server,
                state_dir=Path(options.state_dir).expanduser() if options.state_dir else default_state_dir(),
                interfaces=parse_mdns_option(options.mdns), timeout=options.join_timeout)
        except JoinError as error:
            log.error("cannot join the cluster: %s", error)
            return 1
        options.store = joined.url
        options.store_ca, options.store_cert, options.store_key = joined.tls.ca, joined.tls.cert, joined.tls.key
    if options.store:  # a wrong CA, a missing key, http:// to a TLS etcd: said in one line, before anything starts
        from meshd.store.etcd import store_problem
        from meshd.store.etcdtls import StoreTls

        problem = await store_problem(options.store, StoreTls(options.store_ca, options.store_cert, options.store_key))
        if problem is not None:
            log.error("cannot use the store: %s", problem)
            return 1
    agent = Agent(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.ensure_future(agent.start())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():  # asked to stop while waiting for the engine
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await agent.close(stop_pods=False)
        return 0
    stopping.cancel()
    try:
        starting.result()
    except (DriverError, OSError, StoreError, SlotError, ServiceRangeError) as error:
        log.error("cannot start: %s", error)
        await agent.close(stop_pods=False)
        return 1
    if files:
        from meshd.cli.files import read_manifests  # the CLI's reader: files, directories, '-'
        from meshd.manifests import ManifestError

        try:
            for text, source in read_manifests(files):
                results, warnings = await agent.controller.apply(text, source=source)
                for warning in warnings:
                    log.warning("%s", warning)
                for result in results:
                    log.info("%s/%s %s", result.kind.lower(), result.name, result.action)
        except (ManifestError, OSError, StoreError) as error:
            log.error("%s", error)
            await agent.close(stop_pods=True)
            return 1
    if await _stopped_or_removed(stop, agent):
        await agent.close(stop_pods=False)
        return 1
    log.info("shutting down%s", " and removing every pod" if files is not None else "")
    await agent.close(stop_pods=files is not None)
    return 0


async def _stopped_or_removed(stop: asyncio.Event, agent: Agent) -> bool:
    """Waits for a signal to stop (False) or this node's deletion from its cluster (True: the agent exits 1, and a
    node that joined forgets the store it was given: only a fresh --join brings it back)."""
    if agent.cluster is None:
        await stop.wait()
        return False
    from meshd.cluster.joining import forget_store

    waits = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(agent.cluster.removed.wait())}
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for waiting in waits:
        waiting.cancel()
    if stop.is_set() or not agent.cluster.removed.is_set():
        return False
    forgotten = await asyncio.to_thread(forget_store, agent.state_dir)
    log.error("exiting (1): this node was deleted from the cluster%s",
              f"; the store it joined is forgotten (moved to {forgotten})" if forgotten else "")
    return True


def run_agent(options: AgentOptions) -> int:
    return _run(options, None)


def run_up(options: AgentOptions, files: list[str]) -> int:
    return _run(options, files)


def _run(options: AgentOptions, files: list[str] | None) -> int:
    _configure_logging(options.verbose)
    try:
        import uvloop

        return uvloop.run(_serve(options, files))
    except ImportError:
        return asyncio.run(_serve(options, files))

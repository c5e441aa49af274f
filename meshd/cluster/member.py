"""An agent as a member of a cluster on a shared store (`meshd agent --store etcd://...`): opens the store
for the controller, registers the node and renews its Lease, takes part in the leader election (only the
leader reconciles), feeds other agents' writes to the controller, and reports the store's reachability in
/healthz, an Event on the node and `meshd_store_up`.

A node deleted from the cluster (`kubectl delete node`) while its agent runs: the agent does not register it
again; it stops its pods (the leader has them made again on other nodes), its certificate is revoked by every
agent, and once its pods stopped it sets `removed` (the agent exits 1 with the reason; a node that joined with a
token forgets the store it was given, so only a fresh `--join` brings it back)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshd.cluster import tokens
from meshd.cluster.follow import follow_store
from meshd.cluster.heartbeat import NodeHeartbeat
from meshd.cluster.kubelet import Kubelet
from meshd.cluster.pods import ClusterPods
from meshd.cluster.leader import LeaderElection
from meshd.cluster.meshcerts import NodeCertificates
from meshd.cluster.pki import DEFAULT_MESH_PORT, DEFAULT_VALIDITY
from meshd.cluster.remote import RemoteEndpoints
from meshd.controller.loop import Controller
from meshd.health import CheckResult
from meshd.store import PersistError
from meshd.store.etcd import EtcdObjectStore, open_etcd_store
from meshd.store.etcdclient import EtcdClient, parse_store_url
from meshd.store.etcdtls import StoreTls, check_flags, client_context
from meshd.tasks import TaskGroup

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterOptions:
    store: str  # https://HOST:PORT[,HOST:PORT...] (or http://, etcd:// for plain HTTP)
    node_name: str
    node_grace: float = 6.0  # a node whose Lease is older is NotReady; it is renewed every grace/3 seconds
    leader_ttl: int = 5  # the leader key's etcd lease: a dead leader is replaced within this
    compact_interval: float = 300.0  # the leader compacts etcd's history older than this (kube-apiserver's 5 min)
    pod_eviction_timeout: float = 5.0  # a node NotReady this long loses its pods (replaced on Ready nodes)
    mesh_dir: str = ""  # where this node's mesh identity is written for the sidecar ("": no mutual TLS)
    mesh_port: int = DEFAULT_MESH_PORT  # the sidecar's mesh gateway, on the node's InternalIP
    cert_validity: float = DEFAULT_VALIDITY.total_seconds()  # node certificates, issued again at 2/3 of it
    keep_expired_tokens: float = 3600.0  # the leader deletes a bootstrap token this long after it expired
    store_tls: StoreTls = StoreTls()  # --store-ca, --store-cert, --store-key (https:// only)

    def __post_init__(self) -> None:
        check_flags(parse_store_url(self.store), self.store_tls)  # ValueError naming --store or the TLS flag
        if self.node_grace < 1:
            raise ValueError(f"--node-grace {self.node_grace}: must be at least 1 second")
        if self.pod_eviction_timeout < 0:
            raise ValueError(f"--pod-eviction-timeout {self.pod_eviction_timeout}: must not be negative")
        if self.leader_ttl < 2:
            raise ValueError(f"--leader-ttl {self.leader_ttl}: must be at least 2 seconds")
        if not 0 < self.mesh_port < 65536:
            raise ValueError(f"--mesh-port {self.mesh_port}: not a port")
        if self.cert_validity < 60:
            raise ValueError(f"--cert-validity {self.cert_validity:g}: must be at least 60 seconds")


class ClusterMember:
    def __init__(self, options: ClusterOptions, controller: Controller, node: Callable[[], dict[str, Any]],
                 render_pod: Callable[..., dict[str, Any]]) -> None:
        """`render_pod(worker, node=...)`: a pod worker as a v1 Pod (meshd.api.kube.pod), whose status the kubelet
        writes."""
        self.options = options
        self._render_pod = render_pod
        self.controller = controller
        self._node = node
        self.store: EtcdObjectStore | None = None
        self.heartbeat: NodeHeartbeat | None = None
        self.election: LeaderElection | None = None
        self._tasks = TaskGroup("cluster")
        self._election_client: EtcdClient | None = None
        self.pods: ClusterPods | None = None
        self.kubelet: Kubelet | None = None
        self.remote: RemoteEndpoints | None = None
        self.certificates: NodeCertificates | None = None
        self.on_leadership: list[Callable[[bool], Any]] = []  # told True on leading, False on no longer leading
        self.removed = asyncio.Event()  # this node was deleted from the cluster and its pods stopped
        self.removal = ""  # why, for the agent's last log line

    @property
    def leading(self) -> bool:
        return self.election is not None and self.election.leading

    async def open_store(self) -> EtcdObjectStore:
        """The shared store, set as the controller's (before controller.start()); PersistError if unreachable."""
        endpoints, tls = parse_store_url(self.options.store), self.options.store_tls
        try:
            context = await asyncio.to_thread(client_context, tls) if endpoints[0].startswith("https://") else None
        except ValueError as error:
            raise PersistError(str(error)) from None
        self.store = await open_etcd_store(endpoints, attempts=5, ssl_context=context, tls=tls)
        # members without a raft leader for as long as a probe may take (2/3 of the grace): not an election
        self.store.leaderless_grace = self._probe_timeout()
        self.controller.use_store(self.store)
        self.controller.leading = False
        # pods are Pod objects in the store, bound to nodes; this node's kubelet runs its own (meshd.cluster.kubelet)
        self.pods = ClusterPods(self.controller, self.store, self.options.node_name,
                                node_grace=self.options.node_grace, eviction_timeout=self.options.pod_eviction_timeout)
        self.pods.load()
        self.kubelet = Kubelet(self.controller, self.pods, self.store, self.options.node_name, self._host_ip,
                               self._render_pod)
        self.controller.cluster, self.controller.kubelet = self.pods, self.kubelet
        return self.store

    def _host_ip(self) -> str:
        """This node's InternalIP, as its Node object says (a pod's status.hostIP)."""
        addresses = (self._node().get("status") or {}).get("addresses") or []
        return next((a["address"] for a in addresses if a.get("type") == "InternalIP"), "")

    def start(self) -> None:
        assert self.store is not None
        self.heartbeat = NodeHeartbeat(self.store, self._node, interval=self.options.node_grace / 3,
                                       grace=self.options.node_grace)
        client = self.store.client
        self._election_client = EtcdClient(client.endpoints, timeout=self.options.leader_ttl / 3,
                                           ssl_context=client.ssl_context, tls=client.tls)
        self.election = LeaderElection(self._election_client, self.options.node_name, ttl=self.options.leader_ttl,
                                       on_start=self._lead, on_stop=self._follow, store=self.store)
        self._tasks.supervise("heartbeat", self.heartbeat.run)
        self._tasks.supervise("follow the store", lambda: follow_store(self.controller))
        self._tasks.supervise("leader election", self.election.run)
        self._tasks.supervise("store reachability", self._report_reachability)
        self._tasks.supervise("compaction", self._compact_forever)
        self._tasks.supervise("node removal", self._leave_when_deleted)
        store = self.store
        self._tasks.supervise("token cleaner", lambda: tokens.clean_expired_tokens(
            store, leading=lambda: self.controller.leading, clock=time.time, keep=self.options.keep_expired_tokens))
        self._tasks.supervise("store probe", self._probe_store)
        pods, kubelet = self.pods, self.kubelet
        assert pods is not None and kubelet is not None
        self._tasks.supervise("pod writes", pods.writer.run)
        self._tasks.supervise("pod status writes", kubelet.writer.run)
        self._tasks.supervise("kubelet", kubelet.run)
        self._tasks.supervise("evictions", lambda: pods.run_leader(lambda: self.controller.leading))
        self._start_mesh()

    def _start_mesh(self) -> None:
        """Other nodes' pods into the registry; this node's certificate (with a mesh dir)."""
        assert self.store is not None
        self.remote = RemoteEndpoints(self.store, self.controller.registry, own_node=self.options.node_name,
                                      grace=self.options.node_grace)
        self._tasks.supervise("remote endpoints", self.remote.run)
        if self.options.mesh_dir:
            def addresses() -> list[str]:
                listed = (self._node().get("status") or {}).get("addresses") or []
                return [str(a["address"]) for a in listed
                        if a.get("type") == "InternalIP" and a.get("address") not in ("0.0.0.0", "::", "")]

            self.certificates = NodeCertificates(self.store, node_name=self.options.node_name, addresses=addresses,
                                                 directory=Path(self.options.mesh_dir),
                                                 mesh_port=self.options.mesh_port,
                                                 validity=datetime.timedelta(seconds=self.options.cert_validity))
            self._tasks.supervise("mesh certificates", self.certificates.run)

    def _lead(self) -> None:
        self.controller.leading = True
        self.controller.events.record("Lease", "kube-system", "meshd-controller", "Normal", "LeaderElection",
                                      f"{self.options.node_name} became leader")
        self.controller.kick()
        self._tell(True)

    def _follow(self) -> None:
        self.controller.leading = False
        self._tell(False)

    def _tell(self, leading: bool) -> None:
        for listener in list(self.on_leadership):
            try:
                listener(leading)
            except Exception:  # one listener's bug must not stop the election's hand-over
                log.exception("leadership listener failed")

    async def _compact_forever(self) -> None:
        """While leading, drops etcd's history older than one interval, as kube-apiserver does every 5 minutes
        (etcd keeps every revision otherwise, and heartbeats make many): a watch further behind lists again."""
        assert self.store is not None
        previous: int | None = None
        while True:
            await asyncio.sleep(self.options.compact_interval)
            if self.election is None or not self.election.leading:
                previous = None
                continue
            if previous is not None:
                try:
                    await self.store.client.compact(previous)
                    log.debug("etcd compacted up to revision %d", previous)
                except PersistError as error:
                    log.warning("etcd compaction to %d: %s", previous, error)
            previous = self.store.resource_version

    async def _report_reachability(self) -> None:
        was = True
        while True:
            await asyncio.sleep(0.5)
            up = self.store is not None and self.store.reachable
            if up != was:
                reason, text = (("StoreReachable", "the shared store answers again") if up else
                                ("StoreUnreachable", f"the shared store is unreachable: {self.store_error()}; "
                                                     "pods keep running, writes are refused"))
                # a node's events go to the default namespace, as the kubelet's do
                self.controller.events.record("Node", "default", self.options.node_name, "Normal" if up else "Warning",
                                              reason, text)
                was = up

    async def _leave_when_deleted(self, stop_timeout: float = 120.0) -> None:
        """Once the heartbeat saw this node deleted: its pods stopped (at most `stop_timeout`), then `removed`."""
        heartbeat, kubelet = self.heartbeat, self.kubelet
        assert heartbeat is not None and kubelet is not None
        while heartbeat.removed is None:
            await asyncio.sleep(0.5)
        name = self.options.node_name
        self.removal = (f"node {name} was deleted from the cluster (kubectl delete node {name}): its pods are "
                        f"stopped here and made again on other nodes, its mesh certificate is revoked. To bring this "
                        f"machine back, join it again: `meshd token create` on a node of the cluster, then "
                        f"`meshd agent --join TOKEN` here (an agent started with --store registers it again when "
                        f"restarted)")
        log.error("%s", self.removal)
        kubelet.removed = True
        kubelet.kick()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(stop_timeout):
                while self.controller.pods:
                    await asyncio.sleep(0.2)
        if self.controller.pods:
            log.error("node %s: %d pods did not stop within %gs", name, len(self.controller.pods), stop_timeout)
        self.removed.set()

    async def _probe_store(self) -> None:
        """A read of etcd every grace/3 s, given 2/3 of the grace (at least 2 s) to answer: an agent cut off from
        the store reports it within about the grace (the watch of a member behind a pulled cable says nothing,
        and a heartbeat write waits for its own timeout), not only once a write fails. The read requires a raft
        leader: an agent that reaches only members cut off from the others (etcd's minority) moves to one that
        has a leader, and when none has one for 2/3 of the grace it reports the store lost the same way (its
        heartbeat fails meanwhile, so other nodes see it NotReady; its pods keep running)."""
        assert self.store is not None
        while True:
            await asyncio.sleep(self._probe_period())
            await self.store.probe(timeout=self._probe_timeout())

    def _probe_period(self) -> float:
        return max(self.options.node_grace / 3, 0.5)

    def _probe_timeout(self) -> float:
        return max(2 * self._probe_period(), 2.0)

    def store_error(self) -> str:
        return self.store.last_error if self.store is not None else "not opened"

    def check(self) -> CheckResult:
        """/healthz: the shared store answers."""
        if self.heartbeat is not None and self.heartbeat.removed is not None:
            return CheckResult("node", False, f"node {self.options.node_name} was deleted from the cluster")
        if self.store is None or not self.store.reachable:
            return CheckResult("store", False, f"the shared store {self.options.store} is unreachable: "
                                               f"{self.store_error()}")
        return CheckResult("store", True)

    async def close(self) -> None:
        await self._tasks.close()  # the election revokes its lease: another agent leads at once
        if self._election_client is not None:
            await self._election_client.close()


def single_node_metrics() -> None:
    """Without --store the agent is the one leader and its store (SQLite) is there: the cluster's metrics say
    so, so dashboards and alerts read the same on one node and many."""
    from meshd.cluster.leader import LEADER
    from meshd.store.etcd import STORE_UP

    LEADER.set(1)
    STORE_UP.set(1)


__all__ = ["ClusterMember", "ClusterOptions", "single_node_metrics"]

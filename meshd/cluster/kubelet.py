"""The node side of a cluster, as a kubelet: runs the pods bound to this node (a PodWorker each, started as the
controller starts one on a single node), stops the ones whose object went, is being deleted, or is bound
elsewhere, removes the object of a deleted pod once it stopped, and writes its pods' status into their objects
(phase, podIP, hostIP, conditions, containerStatuses) when something a user sees changed, through a coalescing
writer (never once per probe). After an agent restart it adopts what runs of the pods still bound here and removes
the rest. A node deleted from the cluster (`removed`) runs nothing: its pods are stopped, none started."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from meshd.cluster import binding
from meshd.cluster.pods import ClusterPods
from meshd.controller.cascade import release_worker
from meshd.controller.storewriter import StoreWriter
from meshd.controller.pod import PodWorker
from meshd.store import ObjectStore

if TYPE_CHECKING:
    from meshd.controller.loop import Controller

log = logging.getLogger(__name__)


class Kubelet:
    def __init__(self, controller: Controller, pods: ClusterPods, store: ObjectStore, node: str,
                 host_ip: Callable[[], str], render: Callable[..., dict[str, Any]]) -> None:
        """`render(worker, node=...)`: a worker's v1 Pod as the API shows it (meshd.api.kube.pod)."""
        self.c = controller
        self._render = render
        self.pods = pods
        self.store = store
        self.node = node
        self._host_ip = host_ip
        self.writer = StoreWriter("pod status")
        self.removed = False  # this node was deleted from the cluster: stop everything, start nothing
        self._wake = asyncio.Event()
        pods.on_change = self.kick
        controller.watch(self._changed)

    def kick(self) -> None:
        self._wake.set()

    def _changed(self, kind: str, namespace: str, name: str) -> None:
        if kind != "Pod":
            return
        self.kick()
        if (namespace, name) in self.c.pods:
            key = (namespace, name)
            self.writer.submit(key, lambda: self._write_status(key), last=True)

    # --- adoption ----------------------------------------------------------------------------------

    def adopt(self, observed: list[Any]) -> None:
        """At start: takes over the pods that run here and are still bound here; removes every other one."""
        groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for container in observed:
            groups[(container.namespace, container.pod)].append(container)
        unwanted: list[Any] = []
        for key, containers in groups.items():
            obj = self.store.get("Pod", *key)
            if obj is None or binding.node_of(obj) != self.node or binding.deleting(obj) or key not in self.pods.stored:
                unwanted.extend(containers)
                continue
            self._start(key, adopt=containers)
            log.info("adopted pod %s/%s (%d containers)", *key, len(containers))
        if unwanted:
            self.c._tasks.spawn(self.c._remove_containers(unwanted), name="remove unwanted")

    # --- the loop ----------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:  # (asyncio.timeout, not wait_for: 3.11's wait_for may swallow a cancellation racing a wake-up)
                async with asyncio.timeout(1.0):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            self.sync()

    def sync(self) -> None:
        stored = {k: (p.node, p.state.terminating) for k, p in self.pods.stored.items() if not self.removed}
        local = {k: w.terminating for k, w in self.c.pods.items()}
        plan = binding.kubelet_plan(self.node, stored, local)
        for key in plan.stop:
            why = "deleted" if key in stored else "its Pod object was deleted"
            if self.removed:
                why = f"node {self.node} was deleted from the cluster"
            if key in stored and stored[key][0] != self.node:
                why = f"bound to node {stored[key][0] or '(none)'}"
            self.c._terminate(self.c.pods[key], why)
        for key in plan.start:
            self._start(key)
        for key, worker in list(self.c.pods.items()):  # orphaned (meshd.controller.cascade): a bare pod's now
            pod = self.pods.stored.get(key)
            if pod is not None and pod.identity.owner_kind == "Pod" and worker.identity.owner_kind != "Pod":
                release_worker(self.c, worker)
        for key in plan.finalize:
            self.writer.submit((key, "delete"), functools.partial(self._finalize, key, self.pods.stored[key].uid))
        for worker in list(self.c.pods.values()) if not self.removed else ():  # admitted once its volumes are ready
            if not worker.scheduled and not worker.terminating and self.c._volumes_ready(worker):
                worker.start()
        self.c.volume_controller.reclaim_here()  # this node's volumes whose claims are gone

    def _start(self, key: tuple[str, str], adopt: list[Any] | None = None) -> PodWorker | None:
        pod = self.pods.stored.get(key)
        if pod is None:
            return None
        worker = self.c._new_worker(pod.identity, pod.spec, dict(pod.labels), dict(pod.annotations),
                                    created=pod.created, adopt=adopt, bind=False)
        if pod.uid:
            worker.uid = pod.uid  # its object's (the pod's events and containers name it)
        if adopt is None and self.c._volumes_ready(worker):
            worker.start()
        return worker

    async def _finalize(self, key: tuple[str, str], uid: str) -> None:
        """The kubelet's final delete of a pod that stopped (guarded: the object is still that pod's)."""
        obj = self.store.get("Pod", *key)
        if obj is None or obj["metadata"].get("uid") != uid or key in self.c.pods:
            return
        await self.store.delete("Pod", *key, resource_version=obj["metadata"]["resourceVersion"])

    # --- status ------------------------------------------------------------------------------------

    def status(self, worker: PodWorker) -> dict[str, Any]:
        status = binding.node_status(self._render(worker, node=self.node)["status"],
                                     ready_since=worker.ready_since if worker.ready else None)
        status["hostIP"] = self._host_ip()
        status["hostIPs"] = [{"ip": status["hostIP"]}]
        return status

    async def _write_status(self, key: tuple[str, str]) -> None:
        worker = self.c.pods.get(key)
        obj = self.store.get("Pod", *key)
        if worker is None or obj is None or binding.node_of(obj) != self.node:
            return
        status = self.status(worker)
        if obj.get("status") == status:
            return
        await self.store.update({**obj, "status": status})


__all__ = ["Kubelet"]

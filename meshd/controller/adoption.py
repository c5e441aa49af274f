"""The controller and the engine's containers on one node: the engine's event stream into the pod workers (a dead
container is seen at once), adoption after a restart (what runs for a wanted object is taken over, every other
labelled container removed; `take_over` is also the store's adoption, meshd.cluster.podobjects), and the garbage
collection of labelled containers no worker knows."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING

from meshd.controller.pod import PodIdentity
from meshd.driver.base import (
    LABEL_NAMESPACE,
    LABEL_OWNER,
    LABEL_OWNER_KIND,
    LABEL_POD,
    LABEL_REPLICASET,
    DriverError,
    ObservedContainer,
)
from meshd.model.objects import Pod

if TYPE_CHECKING:
    from meshd.controller.loop import Controller

log = logging.getLogger(__name__)

LABEL_CREATED = "io.meshd.created"


async def follow_events(c: Controller) -> None:
    async for event in c.driver.events():
        namespace = event.labels.get(LABEL_NAMESPACE, "")
        pod = event.labels.get(LABEL_POD, "")
        worker = c.pods.get((namespace, pod))
        if worker is not None:
            worker.deliver(event)


def by_pod(observed: list[ObservedContainer]) -> dict[tuple[str, str], list[ObservedContainer]]:
    groups: dict[tuple[str, str], list[ObservedContainer]] = defaultdict(list)
    for container in observed:
        groups[(container.namespace, container.pod)].append(container)
    return dict(groups)


def adopt(c: Controller, observed: list[ObservedContainer]) -> None:
    """Takes over the pods that run for wanted objects (by their containers' labels); removes every other labelled
    container. (A node whose pods are objects of its store adopts from them: meshd.cluster.podobjects.)"""
    unwanted: list[ObservedContainer] = []
    for key, containers in by_pod(observed).items():
        if not take_over(c, key, containers[0].labels, containers, created=created_of(containers) or c._clock()):
            unwanted.extend(containers)
    remove_unwanted(c, unwanted)


def remove_unwanted(c: Controller, containers: list[ObservedContainer]) -> None:
    if containers:
        c._tasks.spawn(remove_containers(c, containers), name="remove unwanted")


def created_of(containers: list[ObservedContainer]) -> float:
    """A pod's creation time as its containers' label says (to the millisecond); 0.0 when none says."""
    return float(containers[0].labels.get(LABEL_CREATED, "0") or 0) if containers else 0.0


def take_over(c: Controller, key: tuple[str, str], labels: Mapping[str, str], containers: list[ObservedContainer],
              *, created: float, uid: str = "") -> bool:
    """Makes the worker of a pod whose owner (named by `labels`, as its containers' are) still exists, taking over
    `containers` (none: it waits for admission as a new pod); False when no owner wants it. `uid`: its object's."""
    namespace, pod = key
    rs_name = labels.get(LABEL_REPLICASET, "")
    if rs_name and (namespace, rs_name) in c.replicasets:
        rs = c.replicasets[(namespace, rs_name)]
        identity = PodIdentity(namespace, pod, rs.owner_kind, rs.owner, rs.name, rs.template_hash)
        template = rs.rs.template
        c._new_worker(identity, template.spec, dict(template.metadata.labels),
                      dict(template.metadata.annotations), created=created, adopt=containers)
    elif not rs_name and c.sets.adopt(namespace, pod, labels, containers, created):
        pass
    elif ("Pod", namespace, pod) in c.objects:  # bare, or orphaned (its containers keep the old labels)
        obj: Pod = c.objects[("Pod", namespace, pod)].obj  # type: ignore[assignment]
        identity = PodIdentity(namespace, pod, "Pod", pod)
        c._new_worker(identity, obj.spec, dict(obj.metadata.labels), dict(obj.metadata.annotations),
                      created=created, adopt=containers)
    elif not (labels.get(LABEL_OWNER_KIND) == "Job" and c.batch.adopt(
            namespace, pod, labels.get(LABEL_OWNER, ""), created=created, adopt=containers)):
        return False
    worker = c.pods[key]
    if uid:
        worker.uid = uid  # the object's: the pod keeps the uid the API showed
    if containers:
        log.info("adopted pod %s/%s (%d containers)", namespace, pod, len(containers))
    return True


async def remove_containers(c: Controller, containers: list[ObservedContainer]) -> None:
    apps = [o for o in containers if not o.is_infra]
    infra = [o for o in containers if o.is_infra]
    for group, remove in ((apps, c.driver.remove_container), (infra, c.driver.remove_sandbox)):
        results = await asyncio.gather(*(remove(o.id) for o in group), return_exceptions=True)
        for container, result in zip(group, results):
            if isinstance(result, Exception):
                log.warning("could not remove unwanted container %s: %s", container.id[:12], result)
            else:
                log.info("removed unwanted container %s (%s/%s)", container.id[:12], container.namespace,
                         container.pod)


async def collect_garbage_forever(c: Controller, interval: float = 30.0, grace: float = 60.0) -> None:
    """Removes labelled containers that no pod worker knows, once they are older than `grace`."""
    while True:
        await asyncio.sleep(interval)
        try:
            observed = await c.driver.list_managed()
        except DriverError as error:
            log.warning("garbage collection skipped: %s", error)
            continue
        known = set().union(*(w.container_ids() for w in c.pods.values())) if c.pods else set()
        now = c._clock()
        dangling = [o for o in observed if o.id not in known
                    and (o.namespace, o.pod) not in c.pods
                    and now - float(o.labels.get(LABEL_CREATED, "0") or 0) > grace]
        if dangling:
            await remove_containers(c, dangling)


__all__ = ["LABEL_CREATED", "adopt", "by_pod", "created_of", "remove_unwanted", "take_over", "collect_garbage_forever", "follow_events", "remove_containers"]

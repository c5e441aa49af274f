"""PodConfig: what a pod worker asks before a container starts (env from ConfigMaps and Secrets, the host
directories of its config volumes, registry credentials), and the loop that keeps mounted files in step with
their objects. Files live under STATE/pod-volumes/NAMESPACE_POD/VOLUME: the tree is the agent's only (0700);
inside a volume, the modes Kubernetes gives (defaultMode, items[].mode)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from meshd.model.expansion import PodFacts
from meshd.model.objects import Container, PodSpec, Secret, Volume
from meshd.volumes.atomic import write_atomically
from meshd.volumes.payload import ConfigError, Lookup, Payload, resolve_config_env, volume_files
from meshd.volumes.pullauth import registry_auth
from meshd.tasks import done_within

log = logging.getLogger(__name__)

SYNC_SECONDS = 1.0  # how often mounted files are compared with their objects at most (the kubelet: ~a minute)


@dataclass(frozen=True)
class Prepared:
    container: Container  # env resolved
    mount_sources: dict[str, str]  # mountPath -> the volume's directory on this host (with subPath: that file)
    registry_auth: dict[str, str] | None = field(default=None, repr=False)


class PodConfig:
    def __init__(self, root: Path, lookup: Lookup) -> None:
        self.root = root
        self.lookup = lookup
        self._written: dict[tuple[str, str, str], Payload] = {}
        self._changed = asyncio.Event()
        self._lock = threading.Lock()  # one writer thread at a time: a sync in flight never outlives forget()
        self._gone: set[tuple[str, str]] = set()  # pods forgotten (until one of the name prepares again)

    def changed(self) -> None:
        """A ConfigMap or Secret was written: sync the mounted files now rather than at the next period."""
        self._changed.set()

    def pod_dir(self, namespace: str, pod: str) -> Path:
        return self.root / f"{namespace}_{pod}"

    async def prepare(self, facts: PodFacts, spec: PodSpec, container: Container) -> Prepared:
        """Raises ConfigError when a referenced object or key is missing (and not optional)."""
        self._gone.discard((facts.namespace, facts.name))
        resolved, skipped = resolve_config_env(container, facts.namespace, self.lookup)
        if skipped:
            log.warning("pod %s/%s: container %s: envFrom keys skipped as invalid variable names: %s",
                        facts.namespace, facts.name, container.name, ", ".join(skipped))
        mounted = {m.name for m in container.volume_mounts}
        volumes = [v for v in spec.volumes if v.is_config and v.name in mounted]
        payloads = {v.name: volume_files(v, facts, _all_containers(spec), self.lookup) for v in volumes}
        sources = await asyncio.to_thread(self._write_and_resolve, facts, payloads, container)
        return Prepared(resolved, sources, self._pull_auth(facts.namespace, spec, container.image))

    def _write_and_resolve(self, facts: PodFacts, payloads: dict[str, Payload], container: Container
                           ) -> dict[str, str]:
        self._write(facts, payloads)
        pod_dir = self.pod_dir(facts.namespace, facts.name)
        return {m.mount_path: mount_source(str(pod_dir / m.name), m.sub_path)
                for m in container.volume_mounts if m.name in payloads}

    def _pull_auth(self, namespace: str, spec: PodSpec, image: str) -> dict[str, str] | None:
        secrets = []
        for name in spec.image_pull_secrets:
            secret = self.lookup("Secret", namespace, name)
            if isinstance(secret, Secret):
                secrets.append(secret)
            else:
                log.warning('image pull secret "%s/%s" not found: pulling %s without it', namespace, name, image)
        return registry_auth(image, secrets)

    def _write(self, facts: PodFacts, payloads: dict[str, Payload]) -> None:
        with self._lock:
            if (facts.namespace, facts.name) not in self._gone:
                self._write_locked(facts, payloads)

    def _write_locked(self, facts: PodFacts, payloads: dict[str, Payload]) -> None:
        pod_dir = self.pod_dir(facts.namespace, facts.name)
        for directory in (self.root, pod_dir):
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o700)
        for name, payload in payloads.items():
            key = (facts.namespace, facts.name, name)
            if self._written.get(key) == payload:
                continue
            if write_atomically(pod_dir / name, payload):
                log.info("pod %s/%s: volume %s updated (%d files)", facts.namespace, facts.name, name, len(payload))
            self._written[key] = payload

    async def forget(self, namespace: str, pod: str) -> None:
        """The pod is gone: its files go too."""
        self._gone.add((namespace, pod))
        for key in [k for k in self._written if k[:2] == (namespace, pod)]:
            del self._written[key]
        await asyncio.to_thread(self._remove, self.pod_dir(namespace, pod))

    def _remove(self, pod_dir: Path) -> None:
        with self._lock:
            shutil.rmtree(pod_dir, ignore_errors=True)

    async def sync(self, pods: Iterable[tuple[PodFacts, PodSpec]]) -> None:
        """Rewrites (atomically) the volumes whose objects changed; subPath mounts are bind mounts of one file
        and do not follow, as in Kubernetes. A volume whose object went away keeps its last files."""
        for facts, spec in pods:
            payloads = {}
            for volume in spec.volumes:
                if not _synced(volume, spec):
                    continue
                try:
                    payloads[volume.name] = volume_files(volume, facts, _all_containers(spec), self.lookup)
                except ConfigError as error:
                    log.debug("pod %s/%s: volume %s not updated: %s", facts.namespace, facts.name, volume.name,
                              error)
            if any(self._written.get((facts.namespace, facts.name, n)) != p for n, p in payloads.items()):
                await asyncio.to_thread(self._write, facts, payloads)

    async def sync_forever(self, pods: Callable[[], Iterable[tuple[PodFacts, PodSpec]]]) -> None:
        while True:
            await done_within(self._changed.wait(), SYNC_SECONDS)
            self._changed.clear()
            await self.sync(pods())


def _synced(volume: Volume, spec: PodSpec) -> bool:
    """A config volume some container mounts (files are written for mounted volumes only)."""
    return volume.is_config and any(m.name == volume.name for c in _all_containers(spec) for m in c.volume_mounts)


def _all_containers(spec: PodSpec) -> tuple[Container, ...]:
    return (*spec.init_containers, *spec.containers)


def mount_source(host_path: str, sub_path: str) -> str:
    """A config volume's directory, or with subPath the file (or directory) it names, resolved through the
    `..data` symlinks now: a subPath mount does not follow later changes, as in Kubernetes."""
    if not sub_path:
        return host_path
    resolved = os.path.realpath(os.path.join(host_path, sub_path))
    if not resolved.startswith(os.path.realpath(host_path) + os.sep) or not os.path.exists(resolved):
        raise ConfigError(f"subPath {sub_path!r} does not exist in the volume")
    return resolved

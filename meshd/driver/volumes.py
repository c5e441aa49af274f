"""The storage behind provisioned PersistentVolumes: a Docker named volume per volume for the Docker driver, a
directory under the state dir for the process driver. Each is labelled (or named) so a restarted agent finds it;
only what meshd created is ever removed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from meshd.driver.base import LABEL_AGENT, LABEL_MANAGED, DriverError, MountSource

LABEL_PV = "io.meshd.pv"  # the PersistentVolume's name
LABEL_CLAIM = "io.meshd.claim"  # the claim it was provisioned for: namespace/name


class VolumeBackend(Protocol):
    kind: str  # "docker-volume" or "directory", kept in the PV's csi.volumeAttributes

    async def create(self, pv_name: str, labels: Mapping[str, str]) -> str:
        """Makes the storage (world-writable, as local provisioners make it) and returns its handle."""

    def handle_for(self, pv_name: str) -> str:
        """The handle `create(pv_name)` returns, the same on every node (in a cluster, the leader names the volume
        and its node makes it: meshd.controller.volumes.nodelocal)."""

    async def remove(self, handle: str) -> None:
        """Removes the storage and its data; one already gone is not an error."""

    async def exists(self, handle: str) -> bool: ...

    async def list(self) -> dict[str, str]:
        """Every volume of this agent this backend holds: handle -> the PersistentVolume's name."""

    def mount(self, handle: str, *, read_only: bool) -> MountSource: ...


class DockerVolumes:
    """Docker named volumes `meshd-pv_<pv name>`, labelled io.meshd.managed, io.meshd.agent, io.meshd.pv and
    io.meshd.claim."""

    kind = "docker-volume"

    def __init__(self, driver: Any) -> None:  # a meshd.driver.docker.DockerDriver
        self.driver = driver

    def handle_for(self, pv_name: str) -> str:
        return f"meshd-pv_{pv_name}"

    async def create(self, pv_name: str, labels: Mapping[str, str]) -> str:
        name = self.handle_for(pv_name)
        all_labels = {**labels, LABEL_MANAGED: "true", LABEL_AGENT: self.driver.agent_id, LABEL_PV: pv_name}

        def create() -> str:
            import docker.errors
            from docker.types import Mount

            client = self.driver._docker()
            client.volumes.create(name=name, driver="local", labels=all_labels)
            opener = client.containers.create(  # a new volume is root's 0755: open it as emptyDirs are opened
                self.driver.pause_image, ["/bin/busybox", "chmod", "0777", "/volume"],
                mounts=[Mount(target="/volume", source=name, type="volume", no_copy=True)],
                network_mode="none",
                # io.meshd.created: the controller's garbage collector leaves a container this young alone
                labels={LABEL_MANAGED: "true", LABEL_AGENT: self.driver.agent_id,
                        "io.meshd.created": f"{time.time():.3f}"},
            )
            try:
                opener.start()
                status = opener.wait(timeout=60)
            finally:
                with contextlib.suppress(docker.errors.APIError):
                    opener.remove(force=True)
            if status.get("StatusCode") != 0:
                with contextlib.suppress(docker.errors.APIError):
                    client.api.remove_volume(name)
                raise DriverError(f"cannot open the volume {name} (chmod exited with {status.get('StatusCode')})")
            return name

        return await self.driver._call(f"create volume {name}", create)

    async def remove(self, handle: str) -> None:
        def remove() -> None:
            import docker.errors

            with contextlib.suppress(docker.errors.NotFound):
                self.driver._docker().api.remove_volume(handle)

        await self.driver._call(f"remove volume {handle}", remove)

    async def exists(self, handle: str) -> bool:
        def inspect() -> bool:
            import docker.errors

            try:
                self.driver._docker().api.inspect_volume(handle)
                return True
            except docker.errors.NotFound:
                return False

        return await self.driver._call(f"inspect volume {handle}", inspect)

    async def list(self) -> dict[str, str]:
        def volumes() -> dict[str, str]:
            found = self.driver._docker().api.volumes(
                filters={"label": [f"{LABEL_AGENT}={self.driver.agent_id}", LABEL_PV]}).get("Volumes") or []
            return {v["Name"]: (v.get("Labels") or {}).get(LABEL_PV, "") for v in found}

        return await self.driver._call("list volumes", volumes)

    def mount(self, handle: str, *, read_only: bool) -> MountSource:
        return MountSource("volume", handle, read_only)


class DirectoryVolumes:
    """Directories STATE/persistent-volumes/<pv name> (the process driver's volumes are plain directories). A
    handle is the directory's path, or in a cluster the PV's name (each node's own directory of that name)."""

    kind = "directory"

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, handle: str) -> Path:
        return Path(handle) if Path(handle).is_absolute() else self.root / handle

    def handle_for(self, pv_name: str) -> str:
        return pv_name

    async def create(self, pv_name: str, labels: Mapping[str, str]) -> str:
        path = self.root / pv_name

        def create() -> None:
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o777)

        try:
            await asyncio.to_thread(create)
        except OSError as error:
            raise DriverError(f"cannot create the volume directory {path}: {error}") from None
        return str(path)

    async def remove(self, handle: str) -> None:
        path = self.path(handle)
        if path.parent != self.root:  # only what this backend made
            raise DriverError(f"{handle} is not a directory meshd provisioned (under {self.root})")
        await asyncio.to_thread(shutil.rmtree, path, True)

    async def exists(self, handle: str) -> bool:
        return await asyncio.to_thread(self.path(handle).is_dir)

    async def list(self) -> dict[str, str]:
        def directories() -> dict[str, str]:
            if not self.root.is_dir():
                return {}
            return {str(p): p.name for p in self.root.iterdir() if p.is_dir()}

        return await asyncio.to_thread(directories)

    def mount(self, handle: str, *, read_only: bool) -> MountSource:
        return MountSource("bind", str(self.path(handle)), read_only)


def volume_backend(driver: Any, state_dir: Path) -> VolumeBackend:
    if getattr(driver, "name", "") == "docker":
        return DockerVolumes(driver)
    return DirectoryVolumes(state_dir / "persistent-volumes")


__all__ = ["LABEL_CLAIM", "LABEL_PV", "DirectoryVolumes", "DockerVolumes", "VolumeBackend", "volume_backend"]

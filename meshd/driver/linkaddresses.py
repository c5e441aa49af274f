"""Service addresses as /32s on one of this host's links (iproute2's `ip addr`): the Docker driver's on its bridge
(containers reach them through their gateway, host processes directly), the process driver's on `lo` (a cluster's
Service range outside 127/8). The node sidecar binds them; the kernel delivers to it."""

from __future__ import annotations

import asyncio
import ipaddress
import json

from meshd.driver.base import DriverError


class LinkAddresses:
    """The /32 addresses on the link `device` (the name cut to the kernel's 15 characters)."""

    def __init__(self, device: str, *, hint: str = "") -> None:
        self.device = device[:15]
        self.hint = hint  # said after a refusal (e.g. what the agent needs to be allowed to add addresses)

    async def add(self, ip: str) -> None:
        """Adds ip/32; idempotent."""
        await self._ip("add", ip, ok_if=("File exists", "already assigned"))

    async def remove(self, ip: str) -> None:
        """Removes ip/32; idempotent."""
        await self._ip("del", ip, ok_if=("Cannot assign requested address", "Address not found"))

    async def list(self) -> list[str]:
        """The IPv4 /32 addresses on the link now."""
        out = await self._run("addr", "show", "dev", self.device, json_output=True)
        return [a["local"] for link in json.loads(out or b"[]") for a in link.get("addr_info", [])
                if a.get("prefixlen") == 32 and a.get("family") == "inet"]

    async def _ip(self, verb: str, ip: str, *, ok_if: tuple[str, ...]) -> None:
        try:
            await self._run("addr", verb, f"{ip}/32", "dev", self.device)
        except DriverError as error:
            if not any(ok in str(error) for ok in ok_if):
                raise

    async def _run(self, *args: str, json_output: bool = False) -> bytes:
        command = ("ip", *(("-j", "-4") if json_output else ()), *args)
        try:
            proc = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.PIPE)
        except FileNotFoundError as exc:
            raise DriverError("the `ip` command (iproute2) is needed to manage Service addresses") from exc
        out, err = await proc.communicate()
        if proc.returncode != 0:
            text = err.decode(errors="replace").strip()
            hint = f" ({self.hint})" if self.hint and "not permitted" in text else ""
            raise DriverError(f"{' '.join(command)} failed: {text}{hint}")
        return out


class LoopbackServiceAddresses:
    """The process driver's Service addresses: those in 127/8 are local already (nothing to do); others (a
    cluster's range) go on `lo` as /32s, which needs root or CAP_NET_ADMIN in the host's (or namespace's) network."""

    LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")

    def __init__(self) -> None:
        self.link = LinkAddresses("lo", hint="the agent needs root or CAP_NET_ADMIN to put Service addresses on lo; "
                                  "a cluster of process-driver nodes only may use a 127/8 --service-cluster-ip-range")

    async def add(self, ip: str) -> None:
        if not self.local_already(ip):
            await self.link.add(ip)

    async def remove(self, ip: str) -> None:
        if not self.local_already(ip):
            await self.link.remove(ip)

    async def list(self) -> list[str]:
        """The /32s on lo outside 127/8 (the ones this class adds)."""
        return [a for a in await self.link.list() if not self.local_already(a)]

    @classmethod
    def local_already(cls, ip: str) -> bool:
        return ipaddress.IPv4Address(ip) in cls.LOOPBACK


__all__ = ["LinkAddresses", "LoopbackServiceAddresses"]

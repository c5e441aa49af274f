"""The mesh's names for apps on the host, through the system resolver (`--host-names auto|resolved|hosts|off`).

`resolved`: a split-DNS route for the zone to the agent's DNS on the meshd bridge (systemd-resolved).
`hosts`: a marked block in /etc/hosts that follows the registry. `auto`: resolved where it works, else hosts.
Whatever cannot be done (no root, no resolved) is said once, and the agent carries on.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from meshd.hostnames.block import block_lines, replace_block
from meshd.hostnames.entries import HostEntry, host_entries, hosts_lines
from meshd.hostnames.hostsfile import Followable, HostsFileNames, hosts_file_path, write_hosts_file
from meshd.hostnames.resolved import ResolvedError, add_route, remove_route, resolved_unavailable

__all__ = [
    "MODES",
    "HostEntry",
    "HostNames",
    "HostsFileNames",
    "block_lines",
    "choose_mode",
    "host_entries",
    "hosts_file_path",
    "hosts_lines",
    "replace_block",
    "write_hosts_file",
]

log = logging.getLogger(__name__)

MODES = ("auto", "resolved", "hosts", "off")


def choose_mode(requested: str, *, has_bridge: bool, resolved_reason: str | None) -> tuple[str, str | None]:
    """(the mode to run, a warning to log or None) for the requested mode, whether the agent has a bridge with
    its DNS on it (the docker driver), and why systemd-resolved cannot be used (None: it can)."""
    if requested not in MODES:
        return (
            "off",
            f"--host-names {requested!r}: not one of {', '.join(MODES)}; the host resolves no mesh names",
        )
    if requested in ("off", "hosts"):
        return requested, None
    if has_bridge and resolved_reason is None:
        return "resolved", None
    if requested == "auto":
        return "hosts", None
    why = resolved_reason or "the process driver has no bridge to route the zone to"
    return (
        "off",
        f"--host-names resolved: {why}; the host resolves no mesh names (--host-names hosts works anywhere)",
    )


class HostNames:
    """Makes the zone's names resolvable on the host from `start()` until `close()`, in the chosen mode."""

    def __init__(
        self,
        registry: Followable,
        *,
        mode: str | None,
        zone: str,
        tag: str,
        link: str | None = None,
        dns_server: str | None = None,
        hosts_path: Path | None = None,
    ) -> None:
        self.requested = mode or os.environ.get("MESHD_HOST_NAMES") or "auto"
        self.registry = registry
        self.zone = zone
        self.tag = "-".join(tag.split()) or "agent"  # one word: it is part of the block markers
        self.link = link
        self.dns_server = dns_server
        self.hosts_path = hosts_path
        self.mode = "off"
        self.hosts: HostsFileNames | None = None

    async def start(self) -> None:
        has_bridge = bool(self.link and self.dns_server)
        reason = None
        if self.requested in ("auto", "resolved") and has_bridge:
            reason = await resolved_unavailable()
        mode, warning = choose_mode(self.requested, has_bridge=has_bridge, resolved_reason=reason)
        if warning:
            log.warning("%s", warning)
        if mode == "resolved":
            assert self.link and self.dns_server
            try:
                await add_route(self.link, self.dns_server, self.zone)
            except ResolvedError as error:
                fallback = "hosts" if self.requested == "auto" else "off"
                log.warning(
                    "cannot route %s to %s on %s through systemd-resolved: %s (run the agent as root)%s",
                    self.zone,
                    self.dns_server,
                    self.link,
                    error,
                    "; keeping /etc/hosts instead" if fallback == "hosts" else "",
                )
                mode = fallback
        if mode == "hosts":
            self.hosts = HostsFileNames(self.registry, tag=self.tag, zone=self.zone, path=self.hosts_path)
            await self.hosts.start()
        self.mode = mode
        log.info("host names (%s): %s", self.requested, self.describe())

    def describe(self) -> str:
        if self.mode == "resolved":
            return f"systemd-resolved sends *.{self.zone} to {self.dns_server} on {self.link}"
        if self.mode == "hosts" and self.hosts is not None:
            failing = " (not written: see above)" if self.hosts.written is None else ""
            return f"a 'meshd {self.tag}' block in {self.hosts.path}{failing}"
        return "off"

    async def close(self) -> None:
        """Takes out what `start()` added (the route, or the hosts block)."""
        if self.hosts is not None:
            await self.hosts.close()
            self.hosts = None
        elif self.mode == "resolved" and self.link:
            try:
                await remove_route(self.link)
            except ResolvedError as error:
                log.warning("cannot remove the route of %s on %s: %s", self.zone, self.link, error)
        self.mode = "off"

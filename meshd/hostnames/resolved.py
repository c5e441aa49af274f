"""The systemd-resolved mode: a split-DNS route for the zone to the agent's DNS on the meshd bridge.

    resolvectl dns meshd0 10.213.0.1            the agent answers DNS on the bridge's gateway, port 53
    resolvectl domain meshd0 '~cluster.local'   only the zone's names go there (a routing-only domain)
    resolvectl default-route meshd0 false       and nothing else does
    resolvectl revert meshd0                    on stop

resolved keeps a link's settings until the link goes or they are reverted, so a crashed agent's route stays
until the next agent sets the same one (the bridge and the address do not change between agents).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence


class ResolvedError(Exception):
    """A resolvectl command failed; the message says which and why."""


async def resolved_unavailable() -> str | None:
    """Why the resolved mode cannot work here (None when `resolvectl status` answers)."""
    if await asyncio.to_thread(shutil.which, "resolvectl") is None:  # stat()s the PATH: off the loop
        return "resolvectl is not installed (systemd-resolved does not run here)"
    try:
        await _resolvectl("status")
    except ResolvedError as error:
        return f"systemd-resolved does not answer: {error}"
    return None


def route_commands(link: str, server: str, zone: str) -> list[tuple[str, ...]]:
    """The resolvectl commands that send the zone's names, and only those, to `server` on `link`."""
    return [
        ("dns", link, server),
        ("domain", link, "~" + zone.strip(".")),
        ("default-route", link, "false"),
    ]


async def add_route(link: str, server: str, zone: str) -> None:
    for command in route_commands(link, server, zone):
        try:
            await _resolvectl(*command)
        except ResolvedError:
            if command[0] != "default-route":  # older resolvectl lacks it: the ~domain alone still routes
                raise


async def remove_route(link: str) -> None:
    await _resolvectl("revert", link)


async def _resolvectl(*args: str, timeout: float = 10.0) -> str:
    command: Sequence[str] = ("resolvectl", *args)
    try:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
    except OSError as error:
        raise ResolvedError(f"{' '.join(command)}: {error}") from None
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise ResolvedError(f"{' '.join(command)}: no answer within {timeout:.0f}s") from None
    if process.returncode != 0:
        reason = (err or out).decode(errors="replace").strip() or f"exit status {process.returncode}"
        raise ResolvedError(f"{' '.join(command)}: {reason}")
    return out.decode(errors="replace")

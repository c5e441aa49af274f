"""An agent takes its host slot (meshd.hostslots): the one it had while free, else another, a gone agent's
sidecar still serving the slot it must take stopped first (its addresses are this agent's now), and a move to
another slot said in the log."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from meshd.hostslots import SlotLease, default_run_dir
from meshd.sidecar_process import left_running, terminate

log = logging.getLogger("meshd")


async def take_slot(*, state_dir: Path, agent_id: str, run_dir: Path | None = None) -> SlotLease:
    """This agent's slot (SlotError when none can be taken)."""
    slot = await asyncio.to_thread(SlotLease.acquire, run_dir=run_dir or default_run_dir(), state_dir=state_dir,
                                   agent_id=agent_id, leftover=left_running)
    if slot.leftover is not None:  # its agent is gone (the slot was free): the slot's addresses are ours now
        pid, owner = slot.leftover
        log.warning("host slot %d: the sidecar (pid %d) of its last agent (state dir %s, not running) still serves "
                    "the slot's addresses and no other slot is free: stopping it", slot.slot, pid, owner)
        try:
            await terminate(pid, owner)
        except PermissionError as error:
            log.error("cannot stop the sidecar (pid %d) of state dir %s: %s; this agent's Services that have its "
                      "addresses are not served until it stops", pid, owner, error)
    if slot.recorded is not None and slot.recorded != slot.slot:
        log.warning("host slot %d, which this agent had, is held by another agent: this agent holds slot %d now",
                    slot.recorded, slot.slot)
    return slot


__all__ = ["take_slot"]

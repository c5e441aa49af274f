"""Several agents on one host stay apart: each live agent holds a numbered slot, and its address ranges (the
process driver's pods and Services, the Docker driver's Service addresses on the shared bridge, the Service
range a cluster it creates defaults to) and its sidecar's metrics port come from that slot, so two agents never
hand out the same address or port.

A slot is a lock file `RUN_DIR/slot-N.lock` held (flock) for the agent's life: the kernel frees it when the
agent dies, however it dies, so a slot is live exactly while its agent runs. The first agent on a host takes
slot 0 (the ranges meshd always used); an agent keeps the slot it had (recorded in its state dir) while it is
free, so its addresses stay the same across restarts. A slot whose last agent is gone but whose sidecar still
serves its addresses (it outlives its agent, for the next agent of that state dir to adopt) is taken last; an
agent that has to take it stops that sidecar first (meshd.agent). An agent that ends up in another slot than it
had gives its stored Services addresses of its new range (meshd.slotreaddress). The blocking helpers run
in a thread.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from meshd.driver.listening import listening_addresses as listening_addresses  # where the agent reads it

SLOTS = 32
DOCKER_SERVICE_POOL = "10.213.128.0/17"  # the bridge's Service half, 32 x /22
PROCESS_POD_POOL = "127.213.0.0/16"  # 32 x /21
PROCESS_SERVICE_POOL = "127.64.0.0/11"  # 32 x /16: 127.(64 + slot).0.0/16
CLUSTER_SERVICE_POOL = "10.96.0.0/12"  # 32 x /17: Kubernetes' default range; a cluster's, decided by its first agent
SIDECAR_METRICS_PORT = 7701
SLOT_RECORD = "slot"


class SlotError(Exception):
    """No slot can be taken (all held, or this state dir's agent runs already)."""


@dataclass(frozen=True)
class SlotRanges:
    """What one slot owns."""

    slot: int
    docker_services: str
    process_pods: str
    process_services: str
    cluster_services: str  # the default --service-cluster-ip-range of a cluster this agent creates
    sidecar_metrics_port: int


def slot_ranges(slot: int) -> SlotRanges:
    """The ranges of `slot`: pure, so every agent on the host computes the same split."""
    if not 0 <= slot < SLOTS:
        raise ValueError(f"slot {slot} is not in 0..{SLOTS - 1}")
    return SlotRanges(
        slot=slot,
        docker_services=str(_subnet(DOCKER_SERVICE_POOL, slot)),
        process_pods=str(_subnet(PROCESS_POD_POOL, slot)),
        process_services=f"127.{64 + slot}.0.0/16",
        cluster_services=str(_subnet(CLUSTER_SERVICE_POOL, slot)),
        sidecar_metrics_port=SIDECAR_METRICS_PORT + slot,
    )


def _subnet(pool: str, slot: int) -> ipaddress.IPv4Network:
    network = ipaddress.IPv4Network(pool)
    prefix = network.prefixlen + (SLOTS - 1).bit_length()
    return list(network.subnets(new_prefix=prefix))[slot]


def slot_of_address(address: str, pool: str = DOCKER_SERVICE_POOL) -> int | None:
    """The slot whose share of `pool` holds `address`, None outside the pool."""
    ip, network = ipaddress.IPv4Address(address), ipaddress.IPv4Network(pool)
    if ip not in network:
        return None
    size = network.num_addresses // SLOTS
    return (int(ip) - int(network.network_address)) // size


def stale_addresses(addresses: list[str], *, known: set[int], held: set[int], own: int, mine: set[str],
                    listening: frozenset[str] = frozenset(), pool: str = DOCKER_SERVICE_POOL) -> list[str]:
    """The bridge addresses to reclaim: in a slot some agent held once (its lock file exists) and none holds now,
    or in this agent's own slot but owned by none of its Services. Outside the pool, in a slot never held
    (perhaps an older agent's, alive), or with a listener on it (a sidecar serves it), an address is left alone."""
    stale = []
    for address in addresses:
        slot = slot_of_address(address, pool)
        if slot is None or address in listening:
            continue
        if (slot in known and slot not in held) or (slot == own and address not in mine):
            stale.append(address)
    return stale


def service_slot_pool(driver: str) -> str:
    """The pool whose per-slot shares a standalone agent of `driver` takes its Service addresses from."""
    return DOCKER_SERVICE_POOL if driver == "docker" else PROCESS_SERVICE_POOL


def preference(recorded: int | None, occupied: frozenset[int] | set[int] = frozenset()) -> list[int]:
    """The order slots are tried in: the one this agent had, then the lowest; the `occupied` ones (a gone agent's
    sidecar still serves their addresses) last, the one this agent had first among them."""
    order = list(range(SLOTS))
    if recorded is not None and 0 <= recorded < SLOTS:
        order.remove(recorded)
        order.insert(0, recorded)
    return [s for s in order if s not in occupied] + [s for s in order if s in occupied]


def default_run_dir() -> Path:
    return Path(os.environ.get("MESHD_RUN_DIR") or ("/run/meshd" if os.geteuid() == 0 else f"/tmp/meshd-{os.getuid()}"))


class SlotLease:
    """A slot held by this process (blocking calls: run them in a thread)."""

    def __init__(self, slot: int, lock: IO[bytes], path: Path, *, recorded: int | None = None,
                 leftover: tuple[int, str] | None = None) -> None:
        self.slot = slot
        self.ranges = slot_ranges(slot)
        self._lock = lock  # a file object: the slot is freed when it closes, even if the owner is collected
        self.path = path
        self.recorded = recorded  # the slot this state dir had before (None: none recorded)
        self.leftover = leftover  # (pid, state dir) of the slot's last agent's sidecar, still running: to stop

    @classmethod
    def acquire(cls, *, run_dir: Path, state_dir: Path, agent_id: str,
                leftover: Callable[[Mapping[str, Any]], int | None] | None = None) -> SlotLease:
        """Takes this agent's slot; SlotError when the same state dir's agent runs already or none is free.
        `leftover(holder)`: the pid of the sidecar a slot's last holder (another state dir) left running, if any."""
        run_dir.mkdir(parents=True, exist_ok=True)
        record = state_dir / SLOT_RECORD
        try:
            recorded: int | None = int(record.read_text().strip())
        except (OSError, ValueError):
            recorded = None
        ours = str(state_dir.resolve())
        _, held = slot_states(run_dir)
        holders = {slot: read_holder(run_dir / f"slot-{slot}.lock") for slot in range(SLOTS)}
        live = {holders[slot].get("state_dir") for slot in held}  # their sidecars are their live agents'

        def left_running(holder: Mapping[str, Any]) -> int | None:
            """The sidecar a gone agent of another state dir left running."""
            state = holder.get("state_dir")
            return leftover(holder) if leftover is not None and state not in (None, ours) and state not in live else None

        occupied = {slot for slot in range(SLOTS) if slot not in held and left_running(holders[slot]) is not None}
        for slot in preference(recorded, occupied):
            path = run_dir / f"slot-{slot}.lock"
            lock = open(path, "a+b", buffering=0)  # noqa: SIM115 - held for the agent's life
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                lock.close()
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                holder = read_holder(path)
                if holder.get("state_dir") == ours and holder.get("pid") != os.getpid():
                    raise SlotError(f"an agent with state dir {state_dir} runs already (pid {holder.get('pid')}, "
                                    f"slot {slot}); two agents must not share a state dir") from None
                continue
            previous = read_holder(path)
            pid = left_running(previous)
            lock.truncate(0)
            lock.write(json.dumps({"pid": os.getpid(), "agent_id": agent_id, "state_dir": ours}).encode())
            record.write_text(f"{slot}\n")
            return cls(slot, lock, path, recorded=recorded,
                       leftover=(pid, str(previous["state_dir"])) if pid is not None else None)
        raise SlotError(f"all {SLOTS} agent slots of this host are held (lock files in {run_dir})")

    def release(self) -> None:
        self._lock.close()  # closing the lock's only descriptor frees it


def read_holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def slot_states(run_dir: Path) -> tuple[set[int], set[int]]:
    """(slots some agent ever held: their lock file exists, slots some process holds now)."""
    known, held = set(), set()
    for slot in range(SLOTS):
        path = run_dir / f"slot-{slot}.lock"
        if not path.exists():
            continue
        known.add(slot)
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            held.add(slot)
        finally:
            os.close(fd)  # also drops the shared lock just taken
    return known, held


def port_free(host: str, port: int) -> bool:
    """Whether a TCP listener could bind host:port now."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True

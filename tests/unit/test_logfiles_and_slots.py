"""Pure decisions of log rotation and of keeping several agents on one host apart."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from meshd.health import CheckResult, LoopLagMonitor, verdict
from meshd.hostslots import (
    SLOTS,
    SlotError,
    SlotLease,
    listening_addresses,
    preference,
    slot_of_address,
    slot_ranges,
    slot_states,
    stale_addresses,
)
from meshd.logfiles import rotate_log


def test_rotation_keeps_the_newest_files_up_to_the_cap(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    for generation in range(8):
        log.write_bytes(f"generation {generation}\n".encode() * 10)
        assert rotate_log(log, max_size=50, max_files=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.log", "c.log.1", "c.log.2", "c.log.3", "c.log.4"]
    assert log.read_bytes() == b""  # truncated in place: a writer holding it open goes on at the start
    assert (tmp_path / "c.log.1").read_bytes().startswith(b"generation 7")
    assert (tmp_path / "c.log.4").read_bytes().startswith(b"generation 4")


def test_a_small_log_is_not_rotated(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    log.write_bytes(b"short\n")
    assert not rotate_log(log, max_size=1024)
    assert not rotate_log(tmp_path / "missing.log")
    assert [p.name for p in tmp_path.iterdir()] == ["c.log"]


def test_slots_split_the_ranges_without_overlap() -> None:
    ranges = [slot_ranges(s) for s in range(SLOTS)]
    for field in ("docker_services", "process_pods", "process_services", "cluster_services"):
        networks = [ipaddress.IPv4Network(getattr(r, field)) for r in ranges]
        assert not any(a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1:]), field
    assert len({r.sidecar_metrics_port for r in ranges}) == SLOTS
    first = slot_ranges(0)  # the first agent on a host keeps the addresses and port meshd always used
    assert (first.docker_services, first.process_pods, first.sidecar_metrics_port) == (
        "10.213.128.0/22", "127.213.0.0/21", 7701)
    everything = [ipaddress.IPv4Network(getattr(r, f)) for r in ranges
                  for f in ("process_pods", "process_services")]
    assert not any(a.overlaps(b) for i, a in enumerate(everything) for b in everything[i + 1:])


@pytest.mark.parametrize(("address", "slot"), [
    ("10.213.128.7", 0), ("10.213.131.254", 0), ("10.213.132.1", 1), ("10.213.255.200", 31), ("10.213.0.5", None),
    ("127.0.0.1", None),
])
def test_slot_of_address(address: str, slot: int | None) -> None:
    assert slot_of_address(address) == slot


@pytest.mark.parametrize(("addresses", "known", "held", "own", "mine", "stale"), [
    # a dead agent's (slot 1 was held once, is not now) go; a live agent's (slot 2) stay
    (["10.213.132.5", "10.213.136.5"], {0, 1, 2}, {0, 2}, 0, set(), ["10.213.132.5"]),
    # in a slot no agent ever held: perhaps an older agent's, alive: left alone
    (["10.213.140.5"], {0}, {0}, 0, set(), []),
    # this agent's own: those no Service of it has any more go
    (["10.213.128.5", "10.213.128.6"], {0}, {0}, 0, {"10.213.128.5"}, ["10.213.128.6"]),
    # outside the Service range (a pod's, the gateway): never touched
    (["10.213.0.1", "192.168.1.1"], set(range(SLOTS)), set(), 0, set(), []),
])
def test_stale_addresses(addresses, known, held, own, mine, stale) -> None:
    assert stale_addresses(addresses, known=known, held=held, own=own, mine=mine) == stale


def test_an_address_something_listens_on_is_never_reclaimed() -> None:
    assert stale_addresses(["10.213.132.5", "10.213.132.6"], known={1}, held=set(), own=0, mine=set(),
                           listening=frozenset({"10.213.132.5"})) == ["10.213.132.6"]


def test_listening_addresses_reads_procfs() -> None:
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.77", 0))
        server.listen()
        assert "127.0.0.77" in listening_addresses()


def test_preference_keeps_the_recorded_slot_first() -> None:
    assert preference(None)[:3] == [0, 1, 2]
    assert preference(5)[:3] == [5, 0, 1]
    assert preference(99)[:2] == [0, 1]


def test_slot_leases_are_exclusive_and_freed_on_release(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = SlotLease.acquire(run_dir=run, state_dir=tmp_path / "a", agent_id="a")
    second = SlotLease.acquire(run_dir=run, state_dir=tmp_path / "b", agent_id="b")
    assert (first.slot, second.slot) == (0, 1)
    assert slot_states(run) == ({0, 1}, {0, 1})
    first.release()
    assert slot_states(run) == ({0, 1}, {1})
    again = SlotLease.acquire(run_dir=run, state_dir=tmp_path / "a", agent_id="a")
    assert again.slot == 0  # the slot recorded in its state dir
    second.release()
    again.release()


def test_two_agents_of_one_state_dir_are_refused(tmp_path: Path) -> None:
    import subprocess
    import sys
    import textwrap

    run, state = tmp_path / "run", tmp_path / "a"
    state.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from meshd.hostslots import SlotLease
        lease = SlotLease.acquire(run_dir=Path({str(run)!r}), state_dir=Path({str(state)!r}), agent_id="a")
        print("held", lease.slot, flush=True)
        time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held 0"
        with pytest.raises(SlotError, match="runs already"):
            SlotLease.acquire(run_dir=run, state_dir=state, agent_id="a")
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize(("results", "status", "text"), [
    ([], 200, "ok"),
    ([CheckResult("state", True), CheckResult("loop", True)], 200, "ok"),
    ([CheckResult("state", True), CheckResult("sidecar", False, "not connected")], 503, "sidecar: not connected\n"),
    ([CheckResult("loop", False, "lag 2s"), CheckResult("state", False, "full")], 503, "loop: lag 2s\nstate: full\n"),
])
def test_health_verdict(results, status, text) -> None:
    assert verdict(results) == (status, text)


def test_loop_lag_is_the_worst_of_the_window() -> None:
    monitor = LoopLagMonitor(window=3)
    for lag in (0.01, 1.5, 0.02):
        monitor.observe(lag)
    assert monitor.lag == 1.5 and not monitor.check(1.0)().ok
    for lag in (0.01, 0.01, 0.01):
        monitor.observe(lag)
    assert monitor.lag == 0.01 and monitor.check(1.0)().ok

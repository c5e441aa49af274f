"""An agent that ends up in another host slot than it had: which stored Services move to its range, the store
write that moves them, and the order slots are taken in when a gone agent's sidecar still serves one."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from meshd.controller.clusterip import IP_ADDRESS_KIND, ip_address_object
from meshd.slotreaddress import AddressMove, ReaddressError, foreign_slot, readdress_plan, with_address
from meshd.hostslots import (
    DOCKER_SERVICE_POOL,
    PROCESS_SERVICE_POOL,
    SLOTS,
    SlotError,
    SlotLease,
    preference,
    service_slot_pool,
    slot_ranges,
)
from meshd.model.endpoints import ServiceKey
from meshd.registry.addresses import first_free
from meshd.store import Create, Delete, Update

PROCESS = ipaddress.IPv4Network(PROCESS_SERVICE_POOL)
DOCKER = ipaddress.IPv4Network(DOCKER_SERVICE_POOL)


def net(text: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(text)


@pytest.mark.parametrize(("address", "pool", "slot_pool", "slot", "moves_from"), [
    # the process driver: 127.(64 + slot)/16; this agent holds slot 1 now
    ("127.64.3.4", "127.65.0.0/16", PROCESS, 1, 0),  # slot 0's, held by another agent: moves
    ("127.65.3.4", "127.65.0.0/16", PROCESS, 1, None),  # its own range: kept
    ("127.95.0.9", "127.65.0.0/16", PROCESS, 1, 31),  # the last slot's
    ("127.0.0.5", "127.65.0.0/16", PROCESS, 1, None),  # outside every slot's share: kept
    # the Docker driver: a /22 of 10.213.128.0/17 each
    ("10.213.128.7", "10.213.132.0/22", DOCKER, 1, 0),
    ("10.213.133.7", "10.213.132.0/22", DOCKER, 1, None),
    ("10.96.0.10", "10.213.132.0/22", DOCKER, 1, None),  # older than slots, or chosen: kept
    # a range chosen with --service-cluster-ip-range: what it holds is kept, another slot's share moves
    ("10.50.0.9", "10.50.0.0/16", DOCKER, 2, None),
    ("10.213.128.7", "10.50.0.0/16", DOCKER, 2, 0),
    ("10.213.136.7", "10.50.0.0/16", DOCKER, 2, None),  # this agent's own slot's share
    # no address: nothing to move
    ("None", "127.65.0.0/16", PROCESS, 1, None),
    ("", "127.65.0.0/16", PROCESS, 1, None),
])
def test_which_address_moves(address, pool, slot_pool, slot, moves_from) -> None:
    assert foreign_slot(address, pool=net(pool), slot_pool=slot_pool, slot=slot) == moves_from


def service(name: str, address: str | None, *, namespace: str = "default", **spec) -> dict:
    body = {"ports": [{"port": 80}], **spec}
    if address is not None:
        body["clusterIP"] = address
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": "7"}, "spec": body}


def test_the_plan_moves_only_another_slots_addresses_and_keeps_the_hash() -> None:
    web, api = ServiceKey("default", "web"), ServiceKey("default", "api")
    old_web = first_free(net("127.64.0.0/16"), web, set())
    services = [service("web", old_web), service("api", "127.65.9.9"), service("headless", "None"),
                service("alias", None, type="ExternalName", externalName="example.com")]
    held = [ip_address_object(old_web, web), ip_address_object("127.65.9.9", api)]
    moves, operations = readdress_plan(services, held, pool=net("127.65.0.0/16"), slot_pool=PROCESS, slot=1)
    new_web = first_free(net("127.65.0.0/16"), web, set())
    assert moves == [AddressMove(web, old_web, new_web, 0)]
    assert new_web.split(".")[2:] == old_web.split(".")[2:]  # the same offset in the new range
    assert operations == [Update(with_address(services[0], new_web)), Create(ip_address_object(new_web, web)),
                          Delete(IP_ADDRESS_KIND, "", old_web)]
    update = operations[0]
    assert isinstance(update, Update)
    assert update.obj["metadata"]["resourceVersion"] == "7"  # refused if the Service changed meanwhile
    assert services[0]["spec"]["clusterIP"] == old_web  # the listing read is not changed


def test_a_moved_service_never_takes_an_address_another_one_holds() -> None:
    web = ServiceKey("default", "web")
    wanted = first_free(net("127.65.0.0/16"), web, set())
    services = [service("web", "127.64.1.1"), service("other", wanted)]
    moves, _ = readdress_plan(services, [], pool=net("127.65.0.0/16"), slot_pool=PROCESS, slot=1)
    assert [m.key for m in moves] == [web] and moves[0].new not in (wanted, "127.64.1.1")


def test_nothing_to_move_writes_nothing() -> None:
    services = [service("web", "127.65.1.1"), service("old", "10.96.0.10")]
    assert readdress_plan(services, [], pool=net("127.65.0.0/16"), slot_pool=PROCESS, slot=1) == ([], [])


def test_clusterips_is_kept_in_step() -> None:
    moved = with_address(service("web", "127.64.1.1", clusterIPs=["127.64.1.1"]), "127.65.1.1")
    assert (moved["spec"]["clusterIP"], moved["spec"]["clusterIPs"]) == ("127.65.1.1", ["127.65.1.1"])


def test_a_full_range_refuses_the_start_with_the_reason() -> None:
    pool = net("127.65.0.0/30")  # .0 reserved: three addresses
    services = [service(f"s{i}", f"127.64.0.{i + 1}") for i in range(4)]
    with pytest.raises(ReaddressError, match=r"Service default/s3 has the address 127\.64\.0\.4 of host slot 0.*"
                                             r"cannot have one of this agent's range 127\.65\.0\.0/30") as error:
        readdress_plan(services, [], pool=pool, slot_pool=PROCESS, slot=1)
    assert isinstance(error.value, SlotError)  # the agent says "cannot start: ..." and exits 1


def test_the_slot_pools_are_the_slots_ranges() -> None:
    for slot in range(SLOTS):
        ranges = slot_ranges(slot)
        assert list(PROCESS.subnets(new_prefix=16))[slot] == net(ranges.process_services)
        assert list(DOCKER.subnets(new_prefix=22))[slot] == net(ranges.docker_services)
    assert (service_slot_pool("docker"), service_slot_pool("process")) == (DOCKER_SERVICE_POOL, PROCESS_SERVICE_POOL)


@pytest.mark.parametrize(("recorded", "occupied", "first", "last"), [
    (None, set(), [0, 1, 2], [30, 31]),
    (None, {0}, [1, 2, 3], [31, 0]),  # a gone agent's sidecar still serves slot 0: its agent may come back to it
    (3, {0, 3}, [1, 2, 4], [3, 0]),  # even the slot this agent had, when another state dir's sidecar serves it
    (3, {1}, [3, 0, 2], [31, 1]),
])
def test_occupied_slots_are_taken_last(recorded, occupied, first, last) -> None:
    order = preference(recorded, occupied)
    assert (order[:3], order[-2:]) == (first, last)
    assert sorted(order) == list(range(SLOTS))


def test_a_slot_whose_last_agents_sidecar_runs_is_taken_last_and_then_named(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    a = SlotLease.acquire(run_dir=run, state_dir=tmp_path / "a", agent_id="a")
    assert a.slot == 0
    a.release()  # agent a is gone; its sidecar "runs" (the callback says so)
    sidecar_of_a = {str((tmp_path / "a").resolve()): 4242}

    def leftover(holder) -> int | None:
        return sidecar_of_a.get(holder.get("state_dir"))

    b = SlotLease.acquire(run_dir=run, state_dir=tmp_path / "b", agent_id="b", leftover=leftover)
    assert (b.slot, b.leftover) == (1, None)
    others = [SlotLease.acquire(run_dir=run, state_dir=tmp_path / f"x{i}", agent_id=f"x{i}", leftover=leftover)
              for i in range(SLOTS - 2) if not (tmp_path / f"x{i}").mkdir()]
    assert sorted(lease.slot for lease in others) == list(range(2, SLOTS))
    c = SlotLease.acquire(run_dir=run, state_dir=tmp_path / "c", agent_id="c", leftover=leftover)
    assert (c.slot, c.leftover) == (0, (4242, str((tmp_path / "a").resolve())))
    for lease in (b, c, *others):
        lease.release()
    again = SlotLease.acquire(run_dir=run, state_dir=tmp_path / "a", agent_id="a", leftover=leftover)
    assert (again.slot, again.recorded, again.leftover) == (0, 0, None)  # its own sidecar: adopted, not stopped
    again.release()


async def test_the_store_holds_the_new_addresses_and_each_move_is_an_event() -> None:
    from meshd.slotreaddress import readdress_services
    from meshd.store import ObjectStore

    web = ServiceKey("default", "web")
    store = ObjectStore()
    await store.create(service("web", "127.64.1.1"))
    await store.create(service("own", "127.65.2.2"))
    await store.create(ip_address_object("127.64.1.1", web))
    events: list[tuple] = []
    moves = await readdress_services(store, pool=net("127.65.0.0/16"), slot_pool=PROCESS, slot=1,
                                     record=lambda *args: events.append(args))
    [move] = moves
    stored = store.get("Service", "default", "web")
    assert stored is not None and stored["spec"]["clusterIP"] == move.new
    assert store.get(IP_ADDRESS_KIND, "", move.new) is not None and store.get(IP_ADDRESS_KIND, "", "127.64.1.1") is None
    assert (store.get("Service", "default", "own") or {})["spec"]["clusterIP"] == "127.65.2.2"
    assert [e[:5] for e in events] == [("Service", "default", "web", "Warning", "ClusterIPChanged")]
    assert await readdress_services(store, pool=net("127.65.0.0/16"), slot_pool=PROCESS, slot=1) == []  # done once


def test_a_live_agents_sidecar_is_never_a_leftover_of_a_slot_it_held_before(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    (tmp_path / "a" / "slot").write_text("3\n")
    a = SlotLease.acquire(run_dir=run, state_dir=tmp_path / "a", agent_id="a")  # live, in slot 3
    (run / "slot-0.lock").write_text(f'{{"pid": 1, "state_dir": "{(tmp_path / "a").resolve()}"}}')  # held before

    def leftover(holder) -> int | None:
        return 4242 if holder.get("state_dir") == str((tmp_path / "a").resolve()) else None

    b = SlotLease.acquire(run_dir=run, state_dir=tmp_path / "b", agent_id="b", leftover=leftover)
    assert (a.slot, b.slot, b.leftover) == (3, 0, None)
    a.release()
    b.release()

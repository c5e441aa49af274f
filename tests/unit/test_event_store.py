"""meshd.controller.events: Events as store objects; a repeat folds into count/lastTimestamp, a burst is one
transaction, events older than the TTL (or beyond the bound) are pruned; and meshd.api.events' conversion of an
events.k8s.io Event into the stored v1 one."""

from __future__ import annotations

import pytest

from meshd.api import events as api_events
from meshd.api.kinds import EVENT, EVENTS_V1
from meshd.controller.events import EventLog, event_object, expired, record_of, Event
from meshd.store import ObjectStore

NOW = 1_780_000_000.0


def stamp(ts: float) -> str:
    from meshd.controller.events import rfc3339

    return rfc3339(ts)


def stored(name: str, last: float) -> dict:
    return {"kind": "Event", "metadata": {"namespace": "default", "name": name}, "lastTimestamp": stamp(last)}


def test_expired_takes_events_past_the_ttl_then_the_oldest_beyond_the_bound():
    events = [stored("old", NOW - 4000), stored("a", NOW - 30), stored("b", NOW - 20), stored("c", NOW - 10)]
    assert expired(events, now=NOW, ttl=3600, limit=10) == [("default", "old")]
    assert expired(events, now=NOW, ttl=3600, limit=2) == [("default", "old"), ("default", "a")]
    assert expired([], now=NOW) == []


def test_a_stored_event_reads_back_as_the_record_it_came_from():
    event = Event("Pod", "default", "web-1", "Warning", "BackOff", "restarting", NOW, component="meshd")
    assert record_of(event_object(event, "web-1.abc")) == Event("Pod", "default", "web-1", "Warning", "BackOff",
                                                                "restarting", NOW, "web-1.abc", "meshd")


async def test_events_are_written_to_the_store_and_a_repeat_counts():
    clock = [NOW]
    store = ObjectStore()
    log = EventLog(clock=lambda: clock[0])
    log.record("ConfigMap", "default", "early", "Normal", "Applied", "created")  # before the store opened
    notified: list[tuple[str, str, str]] = []
    log.attach(store, lambda *key: notified.append(key))
    log.record("Pod", "default", "web-1", "Warning", "BackOff", "restarting")
    clock[0] += 5
    log.record("Pod", "default", "web-1", "Warning", "BackOff", "restarting")
    assert [e.reason for e in log.of("Pod", "default", "web-1")] == ["BackOff"]  # visible before it is written
    await log.flush()
    objects = store.list("Event")
    assert len(objects) == 2 and store.resource_version == 2  # the repeat folded into one write
    (backoff,) = [o for o in objects if o["reason"] == "BackOff"]
    assert backoff["count"] == 2 and backoff["lastTimestamp"] == stamp(NOW + 5)
    assert backoff["firstTimestamp"] == stamp(NOW) and backoff["metadata"]["uid"]
    clock[0] += 1
    log.record("Pod", "default", "web-1", "Warning", "BackOff", "restarting")
    await log.flush()
    assert store.get("Event", "default", backoff["metadata"]["name"])["count"] == 3
    assert {n for _, _, n in notified} == {o["metadata"]["name"] for o in objects}
    assert [e.count for e in log.of("Pod", "default", "web-1")] == [3]


async def test_old_events_are_pruned_and_a_new_one_is_made_after():
    clock = [NOW]
    store = ObjectStore()
    log = EventLog(clock=lambda: clock[0], ttl=60)
    log.attach(store, lambda *_: None)
    log.record("Pod", "default", "web-1", "Normal", "Killing", "Stopping pod: deleted")
    await log.flush()
    clock[0] += 61
    log.record("Pod", "default", "web-2", "Normal", "Killing", "Stopping pod: deleted")
    await log.flush()
    await log.prune()
    assert [o["involvedObject"]["name"] for o in store.list("Event")] == ["web-2"]
    log.record("Pod", "default", "web-1", "Normal", "Killing", "Stopping pod: deleted")
    await log.flush()
    assert sorted(o["involvedObject"]["name"] for o in store.list("Event")) == ["web-1", "web-2"]


def test_an_events_v1_event_is_stored_as_the_v1_event_it_converts_to():
    body = {"metadata": {"name": "settings.check"}, "eventTime": "2026-01-01T00:00:00.000000Z",
            "regarding": {"kind": "ConfigMap", "name": "settings"}, "reason": "Checked", "note": "looks fine",
            "type": "Normal", "action": "Check", "reportingController": "tester", "reportingInstance": "tester-1"}
    obj = api_events.stored_event(EVENTS_V1, "default", "settings.check", body, "2026-01-01T00:00:01Z")
    assert obj["involvedObject"] == {"namespace": "default", "kind": "ConfigMap", "name": "settings"}
    assert (obj["message"], obj["source"], obj["reportingComponent"]) == ("looks fine", {"component": "tester"},
                                                                          "tester")
    back = api_events.to_events_v1(obj)
    assert (back["note"], back["reportingController"], back["action"]) == ("looks fine", "tester", "Check")


def test_a_replaced_event_must_keep_its_name_and_regard_an_object():
    with pytest.raises(ValueError, match="does not match the name"):
        api_events.stored_event(EVENT, "default", "a", {"metadata": {"name": "b"}, "reason": "R",
                                                        "involvedObject": {"kind": "Pod", "name": "p"}}, "t")
    with pytest.raises(ValueError, match="involvedObject"):
        api_events.stored_event(EVENT, "default", "a", {"metadata": {"name": "a"}, "reason": "R"}, "t")


async def test_a_deleted_namespaces_events_go_with_it():
    store = ObjectStore()
    log = EventLog(clock=lambda: NOW)
    log.attach(store, lambda *_: None)
    for namespace in ("gone", "gone", "kept"):
        log.record("Pod", namespace, f"p-{namespace}", "Normal", "Killing", f"Stopping pod {len(store)}")
    await log.flush()
    log.record("Pod", "gone", "late", "Normal", "Killing", "not written yet")
    await log.forget_namespace("gone")
    await log.flush()
    assert [o["metadata"]["namespace"] for o in store.list("Event")] == ["kept"]

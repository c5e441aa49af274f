"""The watch cache's decisions (meshd.api.watchwindow): changes as events with resourceVersions, the bounded
window and its 410, where a watch starts, and what a watcher with selectors sees."""

from __future__ import annotations


import pytest

from meshd.api.watchwindow import (
    CacheEvent,
    Entry,
    TooOld,
    Window,
    affects,
    changed,
    changes,
    current_version,
    parse_resource_version,
    position,
    record,
    seen_by,
    start,
)


def pod(name: str, *, uid: str = "", phase: str = "Running", app: str = "web", ns: str = "default") -> dict:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": ns, "uid": uid or f"uid-{name}",
                                        "labels": {"app": app}}, "status": {"phase": phase}}


def summary(events: list[CacheEvent]) -> list[tuple]:
    return [(e.resource_version, e.type, e.key[1]) for e in events]


def recorded(current: dict, fresh: list[dict], at: int) -> list[CacheEvent]:
    return [e for change in changes(current, fresh) for e in record(current, change, at)]


def test_changes_are_recorded_at_a_revision_that_stamps_the_object():
    current: dict = {}
    events = recorded(current, [pod("a"), pod("b")], 11)
    assert summary(events) == [(11, "ADDED", "a"), (11, "ADDED", "b")]
    assert [e.object["metadata"]["resourceVersion"] for e in events] == ["11", "11"]
    assert changes(current, [pod("a"), pod("b")]) == []  # nothing changed: no event
    events = recorded(current, [pod("a", phase="Failed"), pod("c")], 13)
    assert summary(events) == [(13, "MODIFIED", "a"), (13, "ADDED", "c"), (13, "DELETED", "b")]
    assert events[0].previous is not None and events[0].previous["status"]["phase"] == "Running"
    assert events[2].object["metadata"]["resourceVersion"] == "13"  # a deletion has its own version


def test_one_object_changed_alone():
    current: dict = {}
    recorded(current, [pod("a"), pod("b")], 11)
    assert changed(current, ("default", "a"), pod("a")) is None
    change = changed(current, ("default", "a"), pod("a", phase="Failed"))
    assert change is not None and summary(record(current, change, 14)) == [(14, "MODIFIED", "a")]
    gone = changed(current, ("default", "b"), None)
    assert gone is not None and summary(record(current, gone, 15)) == [(15, "DELETED", "b")]
    assert changed(current, ("default", "b"), None) is None and list(current) == [("default", "a")]


def test_an_object_made_again_under_its_name_is_deleted_then_added():
    current: dict = {}
    recorded(current, [pod("web-0", uid="one")], 11)
    events = recorded(current, [pod("web-0", uid="two")], 12)
    assert summary(events) == [(12, "DELETED", "web-0"), (12, "ADDED", "web-0")]
    assert events[0].object["metadata"]["uid"] == "one" and events[1].object["metadata"]["uid"] == "two"


@pytest.mark.parametrize(("revision", "head", "source", "expected"), [
    (12, 10, 12, 12),  # a store write after the cache's head: at its own revision
    (12, 10, 0, 12),  # (an object shown without a version of its own)
    (12, 12, 12, None),  # the head is there already (a client may hold it): a fresh one
    (11, 12, 11, None),  # a write the cache recorded past (computed again later)
    (12, 10, 14, None),  # computed after a later write of it: not below its own version
    (None, 10, 5, None),  # a status computed live: a fresh one
])
def test_the_revision_a_change_is_recorded_at(revision, head, source, expected):
    assert position(revision, head=head, source=source) == expected


def _window(capacity: int, count: int, floor: int = 0) -> Window:
    window = Window(floor=floor, capacity=capacity)
    for rv in range(floor + 1, floor + count + 1):
        window.append(CacheEvent(rv, "ADDED", ("default", f"p{rv}"), pod(f"p{rv}")))
    return window


@pytest.mark.parametrize(("capacity", "count", "since", "expected"), [
    (10, 5, 0, [1, 2, 3, 4, 5]),  # all of it
    (10, 5, 3, [4, 5]),
    (10, 5, 5, []),  # up to date
    (3, 5, 2, [3, 4, 5]),  # exactly the oldest kept: still whole
    (3, 5, 1, TooOld),  # 2 left the window
    (3, 5, 0, TooOld),
])
def test_the_window_replays_what_follows_a_version_or_says_it_is_too_old(capacity, count, since, expected):
    window = _window(capacity, count)
    if expected is TooOld:
        with pytest.raises(TooOld, match="too old resource version"):
            window.since(since)
    else:
        assert [e.resource_version for e in window.since(since)] == expected


@pytest.mark.parametrize(("text", "expected"), [("", None), ("0", None), ("17", 17)])
def test_a_resource_version_is_a_number_or_any(text, expected):
    assert parse_resource_version(text) == expected


@pytest.mark.parametrize("text", ["abc", "-3", "1.5"])
def test_a_resource_version_that_is_not_a_number_is_refused(text):
    with pytest.raises(ValueError, match="resourceVersion"):
        parse_resource_version(text)


@pytest.mark.parametrize(("rv", "initial_events", "expected"), [
    ("", False, (True, 50)),  # no version: the state, then from now
    ("0", False, (True, 50)),  # "any": the same, from the cache
    ("", True, (True, 50)),  # sendInitialEvents
    ("45", True, (True, 50)),
    ("40", False, (False, 40)),  # exactly the floor: everything after it is kept
    ("47", False, (False, 47)),
    ("50", False, (False, 50)),  # a list's version: only what follows
    ("39", False, TooOld),  # before the window
    ("51", False, TooOld),  # a version this server never gave (from before a restart): list again
])
def test_where_a_watch_starts(rv, initial_events, expected):
    if expected is TooOld:
        with pytest.raises(TooOld):
            start(rv, send_initial_events=initial_events, floor=40, head=50)
    else:
        begin = start(rv, send_initial_events=initial_events, floor=40, head=50)
        assert (begin.initial, begin.after) == expected


def _event(kind: str, now: dict | None, before: dict | None) -> CacheEvent:
    obj = now if now is not None else before
    assert obj is not None
    return CacheEvent(7, kind, ("default", obj["metadata"]["name"]),  # type: ignore[arg-type]
                      {**obj, "metadata": {**obj["metadata"], "resourceVersion": "7"}}, before)


def _web(obj: dict) -> bool:
    return obj["metadata"]["labels"]["app"] == "web"


@pytest.mark.parametrize(("event", "expected"), [
    (_event("ADDED", pod("a"), None), ("ADDED", "web")),
    (_event("ADDED", pod("a", app="db"), None), None),
    (_event("MODIFIED", pod("a"), pod("a")), ("MODIFIED", "web")),
    (_event("MODIFIED", pod("a"), pod("a", app="db")), ("ADDED", "web")),  # came into the selection
    (_event("MODIFIED", pod("a", app="db"), pod("a")), ("DELETED", "web")),  # left it: its last state it was seen in
    (_event("MODIFIED", pod("a", app="db"), pod("a", app="db")), None),
    (_event("DELETED", None, pod("a")), ("DELETED", "web")),
    (_event("DELETED", None, pod("a", app="db")), None),
])
def test_what_a_watcher_with_a_selector_sees(event, expected):
    seen = seen_by(event, _web)
    if expected is None:
        assert seen is None
    else:
        assert (seen[0], seen[1]["metadata"]["labels"]["app"]) == expected
        assert seen[1]["metadata"]["resourceVersion"] == "7"  # the event's version, whatever state it shows


def test_an_entry_keeps_what_a_change_is_detected_on():
    current = {("default", "a"): Entry({"x": 1}, pod("a"))}
    assert summary(recorded(current, [pod("a")], 11)) == [(11, "MODIFIED", "a")]


@pytest.mark.parametrize(("stored", "client", "expected"), [
    ("7", "7", "7"),  # the store's own
    ("7", "12", "7"),  # read at a later revision (a list's, an event's): nothing wrote it since
    ("7", "20", "20"),  # a revision the store has not reached: itself (a Conflict)
    ("7", "5", "5"),  # older than the stored object: stale (a Conflict)
    ("7", "x", "x"),  # not a revision
    ("", "12", "12"),
])
def test_the_stored_version_a_clients_resource_version_stands_for(stored, client, expected):
    assert current_version(stored, client, store_revision=15) == expected


@pytest.mark.parametrize(("resource", "kinds", "name", "expected"), [
    ("Service", ("Service",), "web", "one"),  # its own object: that one computed again
    ("Service", ("Service", "Endpoints"), "web", "one"),  # the registry's update of a Service
    ("Endpoints", ("Service", "Endpoints"), "web", "one"),
    ("Pod", ("Pod",), "", "all"),  # its own kind, no name: all of it
    ("Deployment", ("Pod",), "web-1", "all"),  # a pod's change shows in its Deployment's status
    ("Service", ("Pod",), "web-1", None),  # a Service is computed from its own object alone
    ("ConfigMap", ("Deployment",), "web", None),
    ("Deployment", ("Event",), "web.1", None),  # an event shows nowhere else
    ("Event", ("Event",), "web.1", "one"),
    ("Event", ("Pod",), "web-1", "all"),  # (an event's involvedObject.uid is looked up)
    ("Service", None, "", "all"),  # a change of anything
])
def test_what_a_change_means_for_a_resource(resource, kinds, name, expected):
    assert affects(resource, kinds, name) == expected

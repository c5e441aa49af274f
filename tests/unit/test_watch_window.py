"""The watch cache's decisions (meshd.api.watchwindow): changes as events with resourceVersions, the bounded
window and its 410, where a watch starts, and what a watcher with selectors sees."""

from __future__ import annotations

import itertools

import pytest

from meshd.api.watchwindow import CacheEvent, Entry, TooOld, Window, diff, parse_resource_version, seen_by, start


def pod(name: str, *, uid: str = "", phase: str = "Running", app: str = "web", ns: str = "default") -> dict:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": ns, "uid": uid or f"uid-{name}",
                                        "labels": {"app": app}}, "status": {"phase": phase}}


def versions(start_at: int = 10):
    counter = itertools.count(start_at + 1)
    return lambda: next(counter)


def summary(events: list[CacheEvent]) -> list[tuple]:
    return [(e.resource_version, e.type, e.key[1]) for e in events]


def test_diff_gives_each_change_the_next_version_and_stamps_the_object():
    current: dict = {}
    events = diff(current, [pod("a"), pod("b")], versions())
    assert summary(events) == [(11, "ADDED", "a"), (12, "ADDED", "b")]
    assert [e.object["metadata"]["resourceVersion"] for e in events] == ["11", "12"]
    assert diff(current, [pod("a"), pod("b")], versions(12)) == []  # nothing changed: no event
    events = diff(current, [pod("a", phase="Failed"), pod("c")], versions(12))
    assert summary(events) == [(13, "MODIFIED", "a"), (14, "ADDED", "c"), (15, "DELETED", "b")]
    assert events[0].previous is not None and events[0].previous["status"]["phase"] == "Running"
    assert events[2].object["metadata"]["resourceVersion"] == "15"  # a deletion has its own version


def test_diff_sees_an_object_made_again_under_its_name_as_deleted_then_added():
    current: dict = {}
    diff(current, [pod("web-0", uid="one")], versions())
    events = diff(current, [pod("web-0", uid="two")], versions(11))
    assert summary(events) == [(12, "DELETED", "web-0"), (13, "ADDED", "web-0")]
    assert events[0].object["metadata"]["uid"] == "one" and events[1].object["metadata"]["uid"] == "two"


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
    current = {("default", "a"): Entry('{"x":1}', pod("a"))}
    assert summary(diff(current, [pod("a")], versions())) == [(11, "MODIFIED", "a")]


@pytest.mark.parametrize(("source", "client", "expected"), [
    ("7", "12", "7"),  # the stamp the cache gave it: the store version it was computed from
    ("7", "7", "7"),  # the store's own
    ("7", "11", "11"),  # an older stamp: itself (then a Conflict, as for any stale version)
    ("", "12", ""),  # computed without a store version (a pod): no precondition, as before the cache
])
def test_the_store_version_a_clients_resource_version_stands_for(source, client, expected):
    entry = Entry("{}", {"metadata": {"name": "a", "resourceVersion": "12"}}, source)
    assert entry.store_version(client) == expected

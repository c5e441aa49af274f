"""meshd.api.events: a v1 Event as events.k8s.io/v1 shows it, and what a created Event of either API records."""

from __future__ import annotations

import pytest

from meshd.api import discovery, events
from meshd.api.kinds import EVENT, EVENTS_V1

V1 = {"apiVersion": "v1", "kind": "Event",
      "metadata": {"namespace": "default", "name": "web.18f", "creationTimestamp": "2026-01-02T03:04:05Z"},
      "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "default", "name": "web",
                         "uid": "u1"},
      "type": "Normal", "reason": "ScalingReplicaSet", "message": "Scaled up", "count": 1,
      "firstTimestamp": "2026-01-02T03:04:05Z", "lastTimestamp": "2026-01-02T03:04:05Z",
      "source": {"component": "meshd"}}


def test_a_v1_event_converts_as_the_api_server_converts_it():
    assert events.to_events_v1(V1) == {
        "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": V1["metadata"],
        "eventTime": "2026-01-02T03:04:05.000000Z", "regarding": V1["involvedObject"], "note": "Scaled up",
        "reason": "ScalingReplicaSet", "type": "Normal", "reportingController": "meshd", "reportingInstance": "meshd",
        "deprecatedSource": {"component": "meshd"}, "deprecatedFirstTimestamp": "2026-01-02T03:04:05Z",
        "deprecatedLastTimestamp": "2026-01-02T03:04:05Z", "deprecatedCount": 1}


def test_the_group_is_discoverable_with_the_verbs_meshd_serves():
    (entry,) = discovery.api_resource_list("events.k8s.io", "v1")["resources"]
    assert (entry["name"], entry["kind"], entry["verbs"]) == ("events", "Event", ["create", "delete", "get", "list", "patch", "update", "watch"])
    assert {"groupVersion": "events.k8s.io/v1", "version": "v1"} in [
        v for g in discovery.api_group_list()["groups"] for v in g["versions"]]


@pytest.mark.parametrize("kind, body, recorded", [
    (EVENTS_V1, {"regarding": {"kind": "Pod", "name": "p"}, "reason": "Pulled", "note": "ok",
                 "reportingController": "kubelet"},
     {"kind": "Pod", "name": "p", "type": "Normal", "reason": "Pulled", "message": "ok", "component": "kubelet"}),
    (EVENT, {"involvedObject": {"kind": "Pod", "name": "p"}, "reason": "BackOff", "message": "again",
             "type": "Warning", "source": {"component": "kubelet"}},
     {"kind": "Pod", "name": "p", "type": "Warning", "reason": "BackOff", "message": "again", "component": "kubelet"}),
])
def test_a_created_event_records_its_object_reason_and_text(kind, body, recorded):
    assert events.recorded_fields(kind, body) == recorded


@pytest.mark.parametrize("kind, body, problem", [
    (EVENTS_V1, {"reason": "x"}, "regarding: Required value"),
    (EVENT, {"involvedObject": {"kind": "Pod"}, "reason": "x"}, "involvedObject: Required value"),
    (EVENTS_V1, {"regarding": {"kind": "Pod", "name": "p"}, "reason": "x", "type": "Info"}, "Unsupported value"),
    (EVENTS_V1, {"regarding": {"kind": "Pod", "name": "p"}}, "reason: Required value"),
])
def test_an_event_missing_what_it_is_about_is_invalid(kind, body, problem):
    with pytest.raises(ValueError, match=problem):
        events.recorded_fields(kind, body)

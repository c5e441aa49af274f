"""`events.k8s.io/v1` Events alongside `v1 Event`, the real kubectl (v1.37) and the Python client against a real
agent: discovery, `kubectl get events.v1.events.k8s.io` with its columns and field selectors, EventsV1Api list,
create (as client-go's recorder) and watch."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.integration import test_kubectl
from tests.integration.test_kubectl_writes import write

cluster = test_kubectl.cluster

pytestmark = [pytest.mark.slow]

CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {colour: blue}
"""


async def test_kubectl_finds_and_lists_events_k8s_io(cluster):
    code, out, err = await cluster.kubectl("api-resources", "--api-group=events.k8s.io", "--no-headers")
    assert code == 0 and out.split() == ["events", "ev", "events.k8s.io/v1", "true", "Event"], (out, err)
    code, out, err = await cluster.kubectl("explain", "events.regarding", "--api-version=events.k8s.io/v1")
    assert code == 0 and "GROUP:      events.k8s.io" in out and "FIELD: regarding <ObjectReference>" in out, (out, err)
    code, out, err = await cluster.kubectl("apply", "-f", await write(cluster, "cm.yaml", CONFIG))
    assert code == 0, err

    code, out, err = await cluster.kubectl("get", "events.v1.events.k8s.io", "--field-selector",
                                           "regarding.name=settings")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert [r.split()[1:] for r in rows] == [["Normal", "Applied", "configmap/settings", "created"]], out
    code, out, err = await cluster.kubectl("get", "events.v1.events.k8s.io", "-o", "json")
    assert code == 0, err
    (event,) = [e for e in json.loads(out)["items"] if e["regarding"]["name"] == "settings"]
    assert event["apiVersion"] == "events.k8s.io/v1" and event["note"] == "created"
    assert event["regarding"]["kind"] == "ConfigMap" and event["regarding"]["uid"]
    assert event["reportingController"] == "meshd" and event["eventTime"].endswith(".000000Z")
    code, out, err = await cluster.kubectl("get", "events.v1.events.k8s.io", "--field-selector",
                                           "involvedObject.name=settings")
    assert code == 1 and "field label not supported: involvedObject.name" in err, (out, err)


async def test_the_python_client_lists_creates_and_watches_events_v1(cluster):
    kubernetes = pytest.importorskip("kubernetes")
    code, out, err = await cluster.kubectl("apply", "-f", await write(cluster, "cm.yaml", CONFIG))
    assert code == 0, err

    def use_the_client() -> dict:
        client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        events, core = kubernetes.client.EventsV1Api(client), kubernetes.client.CoreV1Api(client)
        seen: dict = {}
        listed = events.list_namespaced_event("default")
        seen["listed"] = [(e.regarding.kind, e.regarding.name, e.reason, e.note, e.reporting_controller)
                          for e in listed.items]
        seen["event_time"] = [e.event_time is not None for e in listed.items]
        watch = kubernetes.watch.Watch()
        stream = watch.stream(events.list_namespaced_event, "default", resource_version=listed.metadata.resource_version,
                              timeout_seconds=30)
        created = events.create_namespaced_event("default", kubernetes.client.EventsV1Event(
            metadata=kubernetes.client.V1ObjectMeta(name="settings.check"), event_time="2026-01-01T00:00:00.000000Z",
            regarding=kubernetes.client.V1ObjectReference(kind="ConfigMap", name="settings", namespace="default"),
            reason="Checked", note="looks fine", type="Normal", action="Check", reporting_controller="tester",
            reporting_instance="tester-1"))
        seen["created"] = (created.metadata.name, created.note, created.reporting_controller)
        for event in stream:
            if event["object"].metadata.name == "settings.check":
                seen["watched"] = (event["type"], event["object"].reason)
                watch.stop()
        core_events = core.list_namespaced_event("default", field_selector="involvedObject.name=settings")
        seen["core"] = sorted((e.reason, e.message, e.source.component) for e in core_events.items)
        return seen

    seen = await asyncio.to_thread(use_the_client)
    assert ("ConfigMap", "settings", "Applied", "created", "meshd") in seen["listed"]
    assert all(seen["event_time"])
    assert seen["created"] == ("settings.check", "looks fine", "tester")
    assert seen["watched"] == ("ADDED", "Checked")
    assert seen["core"] == [("Applied", "created", "meshd"), ("Checked", "looks fine", "tester")]


async def test_an_event_is_replaced_patched_and_deleted_through_either_api(cluster):
    kubernetes = pytest.importorskip("kubernetes")

    def use_the_client() -> dict:
        client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        events, core = kubernetes.client.EventsV1Api(client), kubernetes.client.CoreV1Api(client)
        seen: dict = {}
        core.create_namespaced_event("default", kubernetes.client.CoreV1Event(
            metadata=kubernetes.client.V1ObjectMeta(name="job.note"), reason="Noted", message="first",
            involved_object=kubernetes.client.V1ObjectReference(kind="Job", name="job", namespace="default"),
            source=kubernetes.client.V1EventSource(component="tester"), count=1))
        patched = core.patch_namespaced_event("job.note", "default", {"message": "second", "count": 2})
        seen["patched"] = (patched.message, patched.count, patched.source.component)
        current = events.read_namespaced_event("job.note", "default")
        current.note = "third"
        replaced = events.replace_namespaced_event("job.note", "default", current)
        seen["replaced"] = (replaced.note, core.read_namespaced_event("job.note", "default").message)
        stale = core.read_namespaced_event("job.note", "default")
        core.patch_namespaced_event("job.note", "default", {"message": "fourth"})
        try:
            core.replace_namespaced_event("job.note", "default", stale)
        except kubernetes.client.ApiException as error:
            seen["stale"] = error.status
        return seen

    seen = await asyncio.to_thread(use_the_client)
    assert seen == {"patched": ("second", 2, "tester"), "replaced": ("third", "third"), "stale": 409}
    code, out, err = await cluster.kubectl("delete", "event", "job.note")
    assert code == 0 and 'event "job.note" deleted' in out, (out, err)
    code, out, err = await cluster.kubectl("get", "event", "job.note")
    assert code == 1 and "NotFound" in err, (out, err)

"""meshd.api.wholeseconds: sub-second durations served as whole seconds, restored on the way back."""

from __future__ import annotations

import json

from meshd.api.wholeseconds import ANNOTATION, for_clients, restore

DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"},
              "spec": {"minReadySeconds": 0.5, "template": {"spec": {
                  "terminationGracePeriodSeconds": 2,
                  "containers": [{"name": "api", "readinessProbe": {"periodSeconds": 0.2, "timeoutSeconds": 1.5},
                                  "lifecycle": {"preStop": {"sleep": {"seconds": 0.3}}}}]}}}}


def test_fractions_are_served_rounded_up_with_the_exact_values_annotated():
    shown = for_clients(DEPLOYMENT)
    probe = shown["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert (probe["periodSeconds"], probe["timeoutSeconds"], shown["spec"]["minReadySeconds"]) == (1, 2, 1)
    assert json.loads(shown["metadata"]["annotations"][ANNOTATION]) == {
        "spec.minReadySeconds": 0.5,
        "spec.template.spec.containers[0].lifecycle.preStop.sleep.seconds": 0.3,
        "spec.template.spec.containers[0].readinessProbe.periodSeconds": 0.2,
        "spec.template.spec.containers[0].readinessProbe.timeoutSeconds": 1.5}
    assert DEPLOYMENT["spec"]["minReadySeconds"] == 0.5  # the stored object is not changed


def test_whole_seconds_are_served_as_they_are():
    pod = {"kind": "Pod", "metadata": {}, "spec": {"containers": [{"livenessProbe": {"periodSeconds": 2.0}}]}}
    assert for_clients(pod) is pod


def test_a_write_of_the_served_object_gets_the_exact_values_back_and_no_annotation():
    assert restore(for_clients(DEPLOYMENT)) == DEPLOYMENT


def test_a_value_the_client_changed_is_the_clients():
    shown = for_clients(DEPLOYMENT)
    shown["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["periodSeconds"] = 5
    back = restore(shown)
    assert back["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["periodSeconds"] == 5
    assert back["spec"]["minReadySeconds"] == 0.5


def test_an_annotation_that_is_not_meshds_json_is_dropped_and_restores_nothing():
    obj = {"metadata": {"annotations": {ANNOTATION: "{nope", "a": "b"}}, "spec": {"minReadySeconds": 1}}
    assert restore(obj) == {"metadata": {"annotations": {"a": "b"}}, "spec": {"minReadySeconds": 1}}

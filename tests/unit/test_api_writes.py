"""The pure decisions of the API's writes: what of a client's object is a manifest, and which Scale is valid."""

from __future__ import annotations

import pytest

from meshd.api.kinds import DEPLOYMENT, SERVICE
from meshd.api.writes import desired, replicas_problem

SERVER_META = {"uid": "u", "resourceVersion": "7", "generation": 2, "creationTimestamp": "2026-01-01T00:00:00Z",
               "managedFields": []}


@pytest.mark.parametrize(("kind", "obj", "expected"), [
    (DEPLOYMENT, {"kind": "Deployment", "metadata": {"name": "web", **SERVER_META}, "spec": {"replicas": 1},
                  "status": {"replicas": 1}},
     {"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 1}}),
    (DEPLOYMENT, {"metadata": {"name": "web", "annotations": {"deployment.kubernetes.io/revision": "3"}}},
     {"metadata": {"name": "web"}}),  # the controller's annotation is not the user's
    (DEPLOYMENT, {"metadata": {"name": "web", "annotations": {"deployment.kubernetes.io/revision": "3", "a": "b"}}},
     {"metadata": {"name": "web", "annotations": {"a": "b"}}}),
    (SERVICE, {"metadata": {"name": "s"}, "spec": {"clusterIP": "10.0.0.5", "clusterIPs": ["10.0.0.5"]}},
     {"metadata": {"name": "s"}, "spec": {"clusterIP": "10.0.0.5"}}),
    (SERVICE, {"metadata": {"name": "s"}, "spec": {"clusterIP": None, "clusterIPs": [None]}},
     {"metadata": {"name": "s"}, "spec": {}}),  # not allocated yet: nothing asked for
])
def test_desired_keeps_what_the_client_asks_for(kind, obj, expected):
    assert desired(kind, obj) == expected


@pytest.mark.parametrize(("replicas", "problem"), [
    (0, None), (3, None), (2**31 - 1, None), (-1, "must be greater than or equal to 0"),
    (2**31, "must be less than or equal to 2147483647"), (True, "must be an integer"), ("3", "must be an integer"),
    (None, "must be an integer"),
])
def test_replicas_problem(replicas, problem):
    assert replicas_problem(replicas) == problem

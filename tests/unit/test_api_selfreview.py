"""meshd.api.selfreview: access reviews (always allowed: one all-powerful token) and the host's usage."""

from __future__ import annotations

import pytest

from meshd.api.selfreview import access_review, cpu_ticks, memory_used, node_metrics


def test_an_access_review_is_allowed_and_says_why():
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
              "spec": {"resourceAttributes": {"verb": "create", "group": "apps", "resource": "deployments"}}}
    answered = access_review(review)
    assert answered["spec"] == review["spec"] and answered["status"]["allowed"] is True


@pytest.mark.parametrize("body", [None, {}, {"spec": {}}, {"spec": {"resourceAttributes": {"resource": "pods"}}}])
def test_a_review_that_asks_nothing_is_refused(body):
    with pytest.raises(ValueError):
        access_review(body)


def test_host_usage_from_proc():
    assert cpu_ticks("cpu  100 5 20 300 10 0 2 0 0 0\ncpu0 1 2 3 4\n") == (127, 437)
    assert memory_used("MemTotal:       1000 kB\nMemFree:  10 kB\nMemAvailable:    400 kB\n") == 600 * 1024
    assert node_metrics("vm", busy_cores=0.25, memory_bytes=2048, timestamp="t")["usage"] == {
        "cpu": "250000000n", "memory": "2Ki"}

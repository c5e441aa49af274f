"""Which ReplicaSet adopts which bare Pod (meshd.controller.podadoption.claims): pure, table-tested."""

from __future__ import annotations

import pytest

from meshd.controller.podadoption import Claimant, claims
from meshd.model.objects import LabelSelector

FRONTEND = Claimant(("default", "frontend"), LabelSelector({"tier": "frontend"}), created=10.0)
OLDER = Claimant(("default", "older"), LabelSelector({"tier": "frontend"}), created=5.0)
ELSEWHERE = Claimant(("other", "frontend"), LabelSelector({"tier": "frontend"}), created=1.0)
EVERYTHING = Claimant(("default", "empty"), LabelSelector({}), created=0.0)


@pytest.mark.parametrize(("claimants", "orphans", "expected"), [
    ([FRONTEND], {("default", "pod1"): {"tier": "frontend"}}, {("default", "pod1"): ("default", "frontend")}),
    ([FRONTEND], {("default", "pod1"): {"tier": "frontend", "extra": "x"}},
     {("default", "pod1"): ("default", "frontend")}),  # a selector needs its labels, not only them
    ([FRONTEND], {("default", "pod1"): {"tier": "backend"}}, {}),
    ([FRONTEND], {("default", "pod1"): {}}, {}),
    ([ELSEWHERE], {("default", "pod1"): {"tier": "frontend"}}, {}),  # only in its own namespace
    ([EVERYTHING], {("default", "pod1"): {"tier": "frontend"}}, {}),  # an empty selector matches nothing
    ([FRONTEND, OLDER], {("default", "pod1"): {"tier": "frontend"}}, {("default", "pod1"): ("default", "older")}),
    ([], {("default", "pod1"): {"tier": "frontend"}}, {}),
    ([FRONTEND], {("default", "a"): {"tier": "frontend"}, ("default", "b"): {"tier": "frontend"}},
     {("default", "a"): ("default", "frontend"), ("default", "b"): ("default", "frontend")}),
])
def test_the_oldest_replicaset_of_the_namespace_whose_selector_matches_adopts(claimants, orphans, expected):
    assert claims(claimants, orphans) == expected

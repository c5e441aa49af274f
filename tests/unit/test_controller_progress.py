"""meshd.controller.progress: a rollout's progress is kept in the Deployment's stored status (its Progressing
condition) and taken up from there by a controller that has no memory of it (a new leader, a restarted agent):
the progress deadline runs on from the last progress, and a rollout that timed out or completed stays so."""

from __future__ import annotations

import pytest

from meshd.controller.progress import Progress, ProgressWriter, restored, stored_status, with_stored_status
from meshd.store import ObjectStore

NOW = 1_780_000_000.0


def deployment(generation: int = 2, status: dict | None = None) -> dict:
    obj = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"namespace": "default", "name": "web", "generation": generation}, "spec": {"replicas": 2}}
    if status is not None:
        obj["status"] = status
    return obj


@pytest.mark.parametrize(("progress", "expected"), [
    (Progress(last_progress=NOW - 100), Progress(last_progress=NOW - 70, snapshot=("now",))),  # + the slack
    (Progress(last_progress=NOW - 30, complete=True),
     Progress(last_progress=NOW - 30, complete=True, snapshot=("now",), announced="web-1")),  # (its event went)
    (Progress(last_progress=NOW - 700, failed=True, message='ReplicaSet "web-1" has timed out progressing.'),
     Progress(last_progress=NOW - 700, failed=True, message='ReplicaSet "web-1" has timed out progressing.',
              snapshot=("now",))),
])
def test_the_stored_condition_gives_back_the_rollout(progress: Progress, expected: Progress) -> None:
    stored = deployment(status=stored_status(progress, 2, "web-1"))
    assert restored(stored, snapshot=("now",), now=NOW) == expected


@pytest.mark.parametrize("obj", [
    None,
    deployment(),  # no status yet
    deployment(generation=3, status=stored_status(Progress(last_progress=NOW), 2, "web-1")),  # a newer spec
    deployment(status={"observedGeneration": 2, "conditions": [{"type": "Available", "status": "True"}]}),
    deployment(status={"observedGeneration": 2, "conditions": [{"type": "Progressing", "lastUpdateTime": "soon"}]}),
    deployment(status="garbage"),  # type: ignore[arg-type]
])
def test_no_usable_condition_is_a_rollout_followed_from_now(obj: dict | None) -> None:
    assert restored(obj, snapshot=(), now=NOW) is None


def test_a_clock_behind_the_stored_time_does_not_move_progress_into_the_future() -> None:
    stored = deployment(status=stored_status(Progress(last_progress=NOW + 60), 2, "web-1"))
    assert restored(stored, snapshot=(), now=NOW).last_progress == NOW  # type: ignore[union-attr]


async def test_the_writer_stores_the_condition_once_and_not_over_a_newer_spec() -> None:
    store = ObjectStore()
    await store.create(deployment(generation=1))
    writer = ProgressWriter(lambda: store)
    progress = Progress(last_progress=NOW - 5)
    writer.save(("default", "web"), progress, 1, "web-1")
    await writer.writer.drain()
    stored = store.get("Deployment", "default", "web")
    assert stored is not None and stored["metadata"]["generation"] == 1  # status does not count as a change
    assert restored(stored, snapshot=(), now=NOW - 5) == progress  # (the slack is capped by now)
    version = store.resource_version
    writer.save(("default", "web"), progress, 1, "web-1")  # unchanged: nothing written
    writer.save(("default", "web"), Progress(last_progress=NOW + 20), 1, "web-1")  # within the slack (30 s)
    await writer.writer.drain()
    assert store.resource_version == version
    writer.save(("default", "web"), Progress(last_progress=NOW + 26), 1, "web-1")  # beyond it
    await writer.writer.drain()
    assert store.resource_version == version + 1
    writer.save(("default", "web"), Progress(last_progress=NOW + 27, complete=True), 1, "web-1")  # complete
    await writer.writer.drain()
    assert restored(store.get("Deployment", "default", "web"), snapshot=(), now=NOW + 99).complete  # type: ignore[union-attr]
    newer = {**store.get("Deployment", "default", "web"), "spec": {"replicas": 3}}  # type: ignore[dict-item]
    await store.update(newer)
    writer.save(("default", "web"), Progress(last_progress=NOW), 1, "web-1")  # of the old generation
    await writer.writer.drain()
    assert restored(store.get("Deployment", "default", "web"), snapshot=(), now=NOW) is None


def test_a_users_write_of_a_deployment_keeps_its_stored_status() -> None:
    stored = deployment(status=stored_status(Progress(last_progress=NOW), 2, "web-1"))
    desired = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"a": "b"}}}
    assert with_stored_status(desired, stored)["status"] == stored["status"]
    assert "status" not in with_stored_status(desired, None)
    assert "status" not in with_stored_status({**desired, "kind": "Service"}, stored)

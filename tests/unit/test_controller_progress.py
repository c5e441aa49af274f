"""meshd.controller.progress: a rollout's progress is kept in the Deployment's stored status (its Progressing
condition) and taken up from there by a controller that has no memory of it (a new leader, a restarted agent):
the progress deadline runs on from the last progress, and a rollout that timed out or completed stays so."""

from __future__ import annotations

import pytest

from meshd.controller.progress import Progress, ProgressWriter, restored, stored_status
from meshd.store import ObjectStore

NOW = 1_780_000_000.0


def deployment(generation: int = 2, status: dict | None = None) -> dict:
    obj = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"namespace": "default", "name": "web", "generation": generation}, "spec": {"replicas": 2}}
    if status is not None:
        obj["status"] = status
    return obj


@pytest.mark.parametrize(("progress", "expected"), [
    (Progress(last_progress=NOW - 30), Progress(last_progress=NOW - 30, snapshot=("now",))),
    (Progress(last_progress=NOW - 30, complete=True),
     Progress(last_progress=NOW - 30, complete=True, snapshot=("now",))),
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
    assert restored(stored, snapshot=(), now=NOW) == progress
    version = store.resource_version
    writer.save(("default", "web"), progress, 1, "web-1")  # unchanged: nothing written
    await writer.writer.drain()
    assert store.resource_version == version
    newer = {**stored, "spec": {"replicas": 3}}
    await store.update(newer)
    writer.save(("default", "web"), Progress(last_progress=NOW), 1, "web-1")  # of the old generation
    await writer.writer.drain()
    assert restored(store.get("Deployment", "default", "web"), snapshot=(), now=NOW) is None

"""The controller's records as store objects and back, and the move of an old state.json into the store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshd.controller.persist import desired_object, load_records, migrate_state_json, owned_replicaset
from meshd.controller.records import ReplicaSetRecord, owned_replicaset_manifest
from meshd.manifests import load_objects, template_hash
from meshd.model.objects import Deployment, ReplicaSet
from meshd.store import CorruptStore, Create, ObjectStore

DEPLOYMENT = yaml.safe_load("""\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, uid: from-the-user, labels: {app: web}}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
""")


async def test_a_deployment_and_its_replicaset_come_back_as_they_were_stored() -> None:
    (deployment,) = load_objects([DEPLOYMENT]).objects
    assert isinstance(deployment, Deployment)
    hash_ = template_hash(deployment.template)
    (rs,) = load_objects([owned_replicaset_manifest(deployment, hash_, 4)]).objects
    assert isinstance(rs, ReplicaSet)
    store = ObjectStore()
    stored_deployment = desired_object(deployment)
    assert "uid" not in stored_deployment["metadata"]  # the user's uid is never the store's
    (written,) = await store.transaction([Create(stored_deployment)])
    record = ReplicaSetRecord(rs, "Deployment", "web", hash_, 4, 3, 1700000000.0)
    await store.create(owned_replicaset(record, owner_uid=written["metadata"]["uid"]))

    loaded = load_records(store.list(None), where="test")
    (obj,) = loaded.objects
    assert obj.obj == deployment and obj.uid == written["metadata"]["uid"] and obj.generation == 1
    (back,) = loaded.replicasets
    assert (back.owner, back.template_hash, back.revision, back.replicas, back.created, back.uid) == \
        ("web", hash_, 4, 3, 1700000000.0, record.uid)
    assert back.rs == rs


async def test_an_object_that_no_longer_loads_is_left_out_and_kept(caplog: Any) -> None:
    store = ObjectStore()
    await store.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "odd", "namespace": "default"},
                        "spec": {"ports": [{"port": "not a number"}]}})
    assert load_records(store.list(None), where="test").objects == []
    assert "leaving out Service default/odd" in caplog.text
    assert store.get("Service", "default", "odd") is not None


@pytest.mark.parametrize(("content", "moved"), [
    ({"objects": [{"manifest": DEPLOYMENT, "generation": 2, "created": 1.5, "uid": "u-1"}], "replicasets": []}, 1),
    ({}, 0),
])
async def test_state_json_moves_into_the_store(tmp_path: Path, content: dict[str, Any], moved: int) -> None:
    (tmp_path / "state.json").write_text(json.dumps(content))
    store = ObjectStore()
    assert await migrate_state_json(tmp_path, store) == moved
    assert len(store) == moved
    assert (tmp_path / "state.json.migrated").exists() and not (tmp_path / "state.json").exists()
    if moved:
        meta = store.get("Deployment", "default", "web")["metadata"]  # type: ignore[index]
        assert (meta["uid"], meta["generation"]) == ("u-1", 2)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"objects": [{"manifest": {}}]}'])
async def test_a_damaged_state_json_is_named(tmp_path: Path, content: str) -> None:
    (tmp_path / "state.json").write_text(content)
    with pytest.raises(CorruptStore, match="state.json"):
        await migrate_state_json(tmp_path, ObjectStore())
    assert (tmp_path / "state.json").exists()  # left where it was for the user to look at

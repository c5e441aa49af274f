"""What users do to nodes and tokens in a cluster: cordon, taint, label and delete a node, evict a pod (kubectl
drain), and the leader's cleaning of expired bootstrap tokens. Table tests of the pure decisions, and the
heartbeat and the token cleaner over the in-memory store."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from meshd.api.cluster import node as node_object
from meshd.api.nodeops import changed_node, eviction_target, node_changes
from meshd.api.patching import PatchError
from meshd.cluster import binding, tokens
from meshd.cluster.heartbeat import NodeHeartbeat
from meshd.cluster.nodes import registration
from meshd.store import ObjectStore

NOW = 1_800_000_000.0


def agent_node(name: str = "n1") -> dict[str, Any]:
    return node_object(name, created=NOW, cpu_millicores=2000, memory_bytes=2 << 30, address="10.0.0.1",
                       runtime="process")


def stored(obj: dict[str, Any], uid: str = "u1", version: str = "7") -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    obj["metadata"].update(uid=uid, resourceVersion=version)
    return obj


# --- the agent's registration keeps what users wrote ---------------------------------------------------------

def test_registration_creates_then_changes_nothing_and_keeps_a_cordon_taints_and_user_labels() -> None:
    desired = agent_node()
    assert registration(None, desired) == desired
    current = stored(desired)
    assert registration(current, desired) is None  # nothing changed: no write each beat
    cordoned = copy.deepcopy(current)
    cordoned["spec"] = {"unschedulable": True, "taints": [{"key": "k", "effect": "NoSchedule"}]}
    cordoned["metadata"]["labels"]["team"] = "blue"
    cordoned["metadata"]["annotations"] = {"meshd.io/mesh-port": "4143"}
    assert registration(cordoned, desired) is None  # the agent does not undo a cordon
    moved = copy.deepcopy(desired)
    moved["status"]["addresses"][0]["address"] = "10.0.0.2"
    fresh = registration(cordoned, moved)
    assert fresh is not None
    assert fresh["spec"] == cordoned["spec"] and fresh["metadata"]["labels"]["team"] == "blue"
    assert fresh["metadata"]["annotations"] == {"meshd.io/mesh-port": "4143"}
    assert fresh["metadata"]["resourceVersion"] == "7"  # guarded by what the agent read
    assert fresh["status"]["addresses"][0]["address"] == "10.0.0.2"


async def test_a_node_deleted_after_registration_is_not_registered_again() -> None:
    store = ObjectStore(None)
    beat = NodeHeartbeat(store, agent_node, interval=1.0, grace=3.0, clock=lambda: NOW)
    await beat.beat()
    assert store.get("Node", "", "n1") is not None and store.get("Lease", "kube-node-lease", "n1") is not None
    await beat.beat()
    assert beat.removed is None
    await store.delete("Node", "", "n1")
    await beat.beat()
    assert beat.removed == NOW
    await beat.beat()
    assert store.get("Node", "", "n1") is None  # as a running kubelet: no re-registration


async def test_an_agent_starting_without_its_node_registers_it() -> None:
    store = ObjectStore(None)
    beat = NodeHeartbeat(store, agent_node, interval=1.0, grace=3.0, clock=lambda: NOW)
    await beat.beat()
    assert beat.removed is None and store.get("Node", "", "n1") is not None


# --- PATCH of a node ------------------------------------------------------------------------------------------

def test_cordon_uncordon_taint_and_label_are_the_changes_a_client_may_make() -> None:
    shown = stored(agent_node())
    cordoned = {**shown, "spec": {"unschedulable": True}}
    assert node_changes(shown, cordoned) == {"unschedulable": True}
    written = changed_node(shown, {"unschedulable": True})
    assert written["spec"] == {"unschedulable": True}
    assert "unschedulable" not in changed_node(written, {"unschedulable": False})["spec"]
    tainted = {**shown, "spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}}
    assert node_changes(shown, tainted) == {"taints": tainted["spec"]["taints"]}
    labelled = copy.deepcopy(shown)
    labelled["metadata"]["labels"]["zone"] = "a"
    assert node_changes(shown, labelled) == {"labels": labelled["metadata"]["labels"]}
    assert node_changes(shown, copy.deepcopy(shown)) == {}


@pytest.mark.parametrize(("change", "says"), [
    (lambda n: n["status"].update(capacity={"cpu": "64"}), "status"),
    (lambda n: n["spec"].update(podCIDR="10.1.0.0/24"), "spec.podCIDR"),
    (lambda n: n["spec"].update(unschedulable="yes"), "must be a boolean"),
    (lambda n: n["spec"].update(taints=[{"key": "k", "effect": "Sometimes"}]), "effect: Unsupported value"),
    (lambda n: n["spec"].update(taints=[{"effect": "NoSchedule"}]), "key: Required value"),
    (lambda n: n["metadata"].update(labels={"a": 1}), "map of strings"),
])
def test_a_patch_of_what_the_agent_owns_or_an_invalid_value_is_refused(change: Any, says: str) -> None:
    shown = stored(agent_node())
    patched = copy.deepcopy(shown)
    change(patched)
    with pytest.raises(PatchError, match=says):
        node_changes(shown, patched)


# --- pods/eviction ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "problem"), [
    ({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-1", "namespace": "default"}}, None),
    ({"metadata": {"name": "web-1"}}, None),
    ({"apiVersion": "policy/v1beta1", "kind": "Eviction", "metadata": {"name": "web-1"}}, None),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1"}}, "expected a policy/v1 Eviction"),
    ({"metadata": {"name": "other"}}, "does not match"),
    ({"metadata": {"name": "web-1", "namespace": "kube-system"}}, "namespace"),
    ([], "must be an Eviction object"),
])
def test_an_eviction_names_the_pod_of_its_path(body: Any, problem: str | None) -> None:
    found = eviction_target(body, "default", "web-1")
    assert found is None if problem is None else problem in (found or "")


# --- the leader evicts every pod of a deleted node --------------------------------------------------------------

def test_every_pod_of_a_deleted_node_is_evicted_a_daemonsets_too() -> None:
    pods = {("default", "web-1"): ("gone", "ReplicaSet", 5.0), ("default", "agent-x"): ("gone", "DaemonSet", 5.0),
            ("default", "web-2"): ("n1", "ReplicaSet", 5.0), ("default", "agent-y"): ("n1", "DaemonSet", 5.0)}
    assert binding.evictions(pods, {"n1": 0.5}, grace=3.0) == [("default", "agent-x"), ("default", "web-1")]


# --- the token cleaner -------------------------------------------------------------------------------------------

def token_secret(token_id: str, expires: float | None, **extra: Any) -> dict[str, Any]:
    secret = tokens.secret_object(tokens.BootstrapToken(token_id, "0123456789abcdef"), expires=expires,
                                  description="")
    secret["metadata"].update(resourceVersion="3", **extra)
    return secret


def test_expired_tokens_are_the_ones_past_their_expiration() -> None:
    unparsable = token_secret("broken", None)
    unparsable["data"]["expiration"] = base64.b64encode(b"tomorrow").decode()
    other = {"kind": "Secret", "type": "Opaque", "metadata": {"name": "x", "namespace": "kube-system"},
             "data": {"expiration": base64.b64encode(b"2000-01-01T00:00:00Z").decode()}}
    elsewhere = token_secret("aaaaaa", NOW - 10, namespace="default")
    listed = [token_secret("old000", NOW - 1), token_secret("now000", NOW), token_secret("soon00", NOW + 30),
              token_secret("never0", None), unparsable, other, elsewhere]
    assert tokens.expired(listed, now=NOW) == [("bootstrap-token-now000", "3"), ("bootstrap-token-old000", "3")]
    assert tokens.next_expiry(listed, now=NOW) == NOW + 30
    assert tokens.expired(listed, now=NOW, keep=1.0) == [("bootstrap-token-old000", "3")]  # kept a second
    assert tokens.expired(listed, now=NOW, keep=3600.0) == []
    assert tokens.next_expiry(listed, now=NOW, keep=3600.0) == NOW - 1 + 3600
    assert tokens.next_expiry([token_secret("never0", None)], now=NOW) is None
    string_data = {"kind": "Secret", "type": tokens.TOKEN_TYPE, "metadata": {"name": "bootstrap-token-sd0000"},
                   "stringData": {"expiration": "2020-01-01T00:00:00Z"}}
    assert tokens.expiry_of(string_data) == tokens.parse_rfc3339("2020-01-01T00:00:00Z")


class Stop(Exception):
    pass


async def test_the_leaders_cleaner_deletes_expired_tokens_and_a_follower_deletes_nothing() -> None:
    store = ObjectStore(None)
    for secret in (token_secret("old000", NOW - 1), token_secret("soon00", NOW + 30), token_secret("never0", None)):
        secret["metadata"].pop("resourceVersion")
        await store.create(secret)
    sleeps: list[float] = []

    async def one_pass(seconds: float) -> None:
        sleeps.append(seconds)
        raise Stop

    with pytest.raises(Stop):
        await tokens.clean_expired_tokens(store, leading=lambda: False, clock=lambda: NOW, sleep=one_pass)
    assert len(store.list("Secret", "kube-system")) == 3
    with pytest.raises(Stop):
        await tokens.clean_expired_tokens(store, leading=lambda: True, clock=lambda: NOW, sleep=one_pass)
    names = sorted(s["metadata"]["name"] for s in store.list("Secret", "kube-system"))
    assert names == ["bootstrap-token-never0", "bootstrap-token-soon00"]
    assert sleeps == [5.0, 5.0]  # the next expiry (30 s away) is further than the longest sleep
    with pytest.raises(Stop):
        await tokens.clean_expired_tokens(store, leading=lambda: True, clock=lambda: NOW + 28, sleep=one_pass)
    assert sleeps[-1] == pytest.approx(2.5)  # woken just after the next expiry


def test_a_deleted_node_that_joined_forgets_its_store_so_only_a_fresh_join_brings_it_back(tmp_path: Any) -> None:
    from meshd.cluster.joining import CREDENTIALS_DIR, forget_store, saved_store

    assert forget_store(tmp_path) is None  # never joined (started with --store): nothing to forget
    (tmp_path / CREDENTIALS_DIR).mkdir()
    (tmp_path / CREDENTIALS_DIR / "store").write_text("etcd://10.0.0.1:2379\n")
    assert saved_store(tmp_path) == "etcd://10.0.0.1:2379"
    moved = forget_store(tmp_path)
    assert moved == tmp_path / CREDENTIALS_DIR / "store.deleted" and moved.read_text().startswith("etcd://")
    assert saved_store(tmp_path) is None  # `meshd agent --join TOKEN` asks the cluster again

"""A transaction the client sent twice (its first answer lost) must not report the write as someone else's."""

from __future__ import annotations

import base64
from typing import Any

from meshd.store.etcd import encode, etcd_key, own_write_revision

POD = ("Pod", "default", "web")
SVC = ("Service", "default", "web")


def obj(name: str, uid: str) -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": "default", "uid": uid, "resourceVersion": "7"}}


def found(key: tuple[str, str, str], value: dict[str, Any] | None, revision: int) -> dict[str, Any]:
    if value is None:
        return {"response_range": {"kvs": []}}
    raw = {"key": base64.b64encode(etcd_key(key).encode()).decode(), "value": encode(value),
           "create_revision": revision, "mod_revision": revision}
    return {"response_range": {"kvs": [raw]}}


def test_the_write_itself_found_under_the_guard_is_this_write() -> None:
    mine = obj("web", "u1")
    assert own_write_revision({POD: mine}, {POD: 0}, [found(POD, mine, 41)]) == 41


def test_another_writers_object_is_not() -> None:
    assert own_write_revision({POD: obj("web", "u1")}, {POD: 0}, [found(POD, obj("web", "u2"), 41)]) is None


def test_a_key_still_absent_is_not() -> None:
    assert own_write_revision({POD: obj("web", "u1")}, {POD: 0}, [found(POD, None, 0)]) is None


def test_every_key_of_a_batch_must_match_at_one_revision() -> None:
    a, b = obj("web", "u1"), {**obj("web", "u3"), "kind": "Service"}
    assert own_write_revision({POD: a, SVC: b}, {POD: 0, SVC: 0}, [found(POD, a, 9), found(SVC, b, 9)]) == 9
    assert own_write_revision({POD: a, SVC: b}, {POD: 0, SVC: 0}, [found(POD, a, 9), found(SVC, b, 8)]) is None
    assert own_write_revision({POD: a, SVC: b}, {POD: 0, SVC: 0}, [found(POD, a, 9), found(SVC, None, 0)]) is None


def test_a_delete_alone_cannot_be_told_from_anothers() -> None:
    assert own_write_revision({POD: None}, {POD: 5}, [found(POD, None, 0)]) is None

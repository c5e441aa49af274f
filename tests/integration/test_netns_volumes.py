"""Claims in a cluster, on two test hosts (network namespaces on a bridge, each its own `meshd agent` with the
process driver, one etcd): a StatefulSet's claim used on the node that does not lead gets its volume on that
node (a directory under that node's state dir, the PersistentVolume's nodeAffinity naming it), not on the
leader's; its pod deleted comes back on that node with the data it wrote; and with its template changed to prefer
the leader's node, the new pod still goes where its volume is (the scheduler's volume node affinity); the node restarted, its pod
runs there again on its data; its claim deleted, that node removes the storage and the PersistentVolume."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.netns_harness import TestLan, usable, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300),
              pytest.mark.skipif(bool(usable()), reason=usable() or "usable")]

MANIFEST = """\
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db}}
spec:
  serviceName: db
  replicas: 1
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:
      nodeSelector: {{kubernetes.io/hostname: {node}}}
      terminationGracePeriodSeconds: 1
      containers:
      - name: db
        image: busybox
        command: ["sh", "-c", "echo \\"$POD_NAME $(cat /proc/sys/kernel/random/uuid)\\" >> $MESHD_VOLUME_DATA/log; exec sleep 3600"]
        volumeMounts: [{{name: data, mountPath: /data}}]
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 10Mi}}}}
"""


@pytest.fixture(scope="module")
def lan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestLan]:
    with TestLan(tmp_path_factory.mktemp("lan"), hosts_wanted=2) as built:
        yield built


def db_pod(lan: TestLan) -> dict[str, Any] | None:
    """db-0 when it runs (Running, not being deleted): its object."""
    status, body = lan.api(0, "/api/v1/namespaces/default/pods/db-0")
    if status != 200 or body.get("metadata", {}).get("deletionTimestamp"):
        return None
    return body if (body.get("status") or {}).get("phase") == "Running" else None


def volume(lan: TestLan) -> dict[str, Any] | None:
    status, body = lan.api(0, "/api/v1/persistentvolumes")
    items = body.get("items") or [] if status == 200 else []
    return items[0] if len(items) == 1 else None


def lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError:
        return []


def test_a_claim_used_on_a_node_that_does_not_lead_lives_on_that_node(lan: TestLan, tmp_path: Path) -> None:
    names = {h.name for h in lan.hosts}
    wait_for(lambda: {n for n, node in lan.nodes(0).items() if node["ready"] == "True"} == names, timeout=90,
             what="2 Ready nodes", explain=lan.explain)
    leader = str(wait_for(lan.leader, timeout=60, what="one leader", explain=lan.explain))
    target = next(h for h in lan.hosts if h.name != leader)
    leading = next(h for h in lan.hosts if h.name == leader)
    manifest = tmp_path / "db.yaml"
    manifest.write_text(MANIFEST.format(node=target.name))
    applied = lan.kubectl(0, "apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr + lan.explain()

    def explain() -> str:
        return (f"\n{lan.kubectl(0, 'get', 'pods,pvc,pv', '-o', 'wide').stdout}"
                f"\n{lan.kubectl(0, 'describe', 'pod', 'db-0').stdout}{lan.explain()}")

    pod = wait_for(lambda: db_pod(lan), timeout=120, what="db-0 running", explain=explain)
    assert pod["spec"]["nodeName"] == target.name
    pv = wait_for(lambda: volume(lan), timeout=30, what="one PersistentVolume", explain=explain)
    terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                                            "values": [target.name]}]}], pv["spec"]
    handle = pv["spec"]["csi"]["volumeHandle"]
    data = target.state_dir / "persistent-volumes" / handle / "log"
    first = wait_for(lambda: lines(data), timeout=30, what=f"db-0 writing {data}", explain=explain)
    assert len(first) == 1 and first[0].startswith("db-0 "), first
    assert not (leading.state_dir / "persistent-volumes" / handle).exists()  # nothing on the leader's disk

    # the pod deleted: the StatefulSet makes it again, on that node, with its data
    uid = pod["metadata"]["uid"]
    deleted = lan.kubectl(0, "delete", "pod", "db-0", "--wait=false")
    assert deleted.returncode == 0, deleted.stderr
    again = wait_for(lambda: (p := db_pod(lan)) and p["metadata"]["uid"] != uid and p, timeout=120,
                     what="db-0 running again", explain=explain)
    assert again["spec"]["nodeName"] == target.name
    second = wait_for(lambda: len(lines(data)) == 2 and lines(data), timeout=30, what="db-0's second line",
                      explain=explain)
    assert second[0] == first[0], second  # what the first pod wrote is still there

    # the node itself restarted (every process in its namespace killed, its agent started again): the pod runs
    # there again on the same volume (not reported gone while its agent looked at its storage again)
    lan.restart_host(target.index)
    wait_for(lambda: len(lines(data)) == 3, timeout=120, what="db-0's line after the node's restart",
             explain=explain)
    assert "is gone" not in target.log.read_text(), target.log.read_text()[-3000:]
    again = wait_for(lambda: db_pod(lan), timeout=60, what="db-0 running after the restart", explain=explain)

    # a new template that prefers the leader's node and selects none: the volume keeps the pod where it is
    patch = ('{"spec": {"template": {"spec": {"nodeSelector": null, "affinity": {"nodeAffinity": '
             '{"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "preference": '
             '{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["%s"]}]}}]}}}}}}'
             % leader)
    patched = lan.kubectl(0, "patch", "statefulset", "db", "--type", "merge", "-p", patch)
    assert patched.returncode == 0, patched.stderr
    uid = again["metadata"]["uid"]
    third = wait_for(lambda: (p := db_pod(lan)) and p["metadata"]["uid"] != uid and p, timeout=120,
                     what="db-0 running from the new template", explain=explain)
    assert third["spec"]["nodeName"] == target.name, third["spec"]
    assert "affinity" in third["spec"] and "nodeSelector" not in third["spec"], third["spec"]
    wait_for(lambda: len(lines(data)) == 4, timeout=30, what="db-0's fourth line", explain=explain)

    # the claim deleted while its pod runs (through the node that runs it, not the leader): pvc-protection keeps
    # it Terminating; the StatefulSet deleted, the leader lets it go (reclaimPolicy Delete): the node that holds
    # the volume removes its storage, then the PV
    out = lan.kubectl(0, "delete", "pvc", "data-db-0", "--wait=false")
    assert out.returncode == 0, out.stderr
    shown = lan.kubectl(0, "get", "pvc", "data-db-0", "-o", "jsonpath={.metadata.finalizers}")
    assert "kubernetes.io/pvc-protection" in shown.stdout, shown.stdout + shown.stderr
    assert data.parent.exists()
    out = lan.kubectl(0, "delete", "statefulset", "db")
    assert out.returncode == 0, out.stderr
    wait_for(lambda: not data.parent.exists(), timeout=90, what=f"{data.parent} removed", explain=explain)
    wait_for(lambda: lan.api(0, "/api/v1/persistentvolumes")[1].get("items") == [], timeout=30,
             what="no PersistentVolume left", explain=explain)

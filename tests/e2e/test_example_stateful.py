"""examples/stateful-app.yaml as a user runs it (`meshd up -f`, the Docker engine): the migration Job runs first
(the web app's init container waits for it), the web app counts visits in Redis through a LoadBalancer Service
on 127.0.0.1, and the count survives the Redis pod's deletion (its data is on the StatefulSet's claim)."""

from __future__ import annotations

import re

import pytest

from tests.e2e.test_mesh import ROOT, Meshd, curl
from tests.integration.agent_harness import free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _visits(url: str) -> int | None:
    answer = curl(url)
    found = re.match(r"visits: (\d+) \(served by web-", answer or "")
    return int(found.group(1)) if found else None


def _redis_uid(meshd: Meshd) -> str | None:
    """redis-0's uid once it is Ready, else None."""
    pod = meshd.get("/api/v1/namespaces/default/pods/redis-0") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in (pod.get("status") or {}).get("conditions") or [])
    return pod["metadata"]["uid"] if ready else None


def test_the_stateful_example_keeps_its_count_through_a_redis_pod_deletion(
        tmp_path, servers_image, python_image, pause_image):
    port = free_port()
    manifest = tmp_path / "stateful-app.yaml"
    manifest.write_text((ROOT / "examples" / "stateful-app.yaml").read_text()
                        .replace("port: 8080, targetPort: http", f"port: {port}, targetPort: http"))
    meshd = Meshd(tmp_path, "up", "-f", str(manifest), "--ingress-http", "off", "--ingress-https", "off").start()
    try:
        url = f"http://127.0.0.1:{port}/"
        meshd.until(lambda: meshd.ready_endpoints("web") == 2, timeout=180, what="the web app (after the Job)")
        job = meshd.get("/apis/batch/v1/namespaces/default/jobs/migrate")
        assert job["status"].get("succeeded") == 1, job["status"]
        first = meshd.until(lambda: _visits(url), timeout=60, what="the web app through the LoadBalancer")
        second = meshd.until(lambda: _visits(url), what="a second visit")
        assert second > first
        old = _redis_uid(meshd)
        assert old is not None
        meshd.cli("delete", "pod", "redis-0")
        meshd.until(lambda: _redis_uid(meshd) not in (None, old), timeout=120, what="a new redis-0, ready")
        assert meshd.until(lambda: _visits(url), what="a visit after redis-0 came back") > second
        claims = meshd.get("/api/v1/namespaces/default/persistentvolumeclaims")
        assert [c["metadata"]["name"] for c in claims["items"]] == ["data-redis-0"]
    finally:
        meshd.stop()

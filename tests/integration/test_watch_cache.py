"""The API's watch cache against a real agent (process driver), with real clients: kubectl and the official
Python client resume a watch from a resourceVersion (replayed from the cache's window), a too-old one answers
410 Expired (the Python client raises it after its one retry; relisting then works), and 100 concurrent
watchers each see every change."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.integration import test_kubectl
from tests.integration.test_kubectl_writes import write

cluster = test_kubectl.cluster

pytestmark = [pytest.mark.slow]


def service(name: str) -> str:
    return (f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector: {{app: {name}}}\n"
            "  ports:\n  - {name: http, port: 80, targetPort: 8080}\n")


async def create_service(cluster, name: str) -> None:
    code, _, err = await cluster.kubectl("apply", "-f", await write(cluster, f"{name}.yaml", service(name)))
    assert code == 0, err


async def list_version(cluster) -> str:
    code, out, err = await cluster.kubectl("get", "--raw", "/api/v1/namespaces/default/services")
    assert code == 0, err
    return json.loads(out)["metadata"]["resourceVersion"]


async def raw_watch(cluster, version: str) -> list[dict]:
    """`kubectl get --raw` of a watch from `version` that ends after 2 s: its events."""
    code, out, err = await cluster.kubectl(
        "get", "--raw", f"/api/v1/namespaces/default/services?watch=true&resourceVersion={version}&timeoutSeconds=2")
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines() if line.strip()]


async def test_kubectl_resumes_a_watch_from_a_lists_version_and_an_old_one_is_410_expired(cluster):
    await create_service(cluster, "before")
    version = await list_version(cluster)
    await create_service(cluster, "after-1")
    await create_service(cluster, "after-2")
    code, _, err = await cluster.kubectl("delete", "service", "before")
    assert code == 0, err

    events = await raw_watch(cluster, version)  # replayed from the window: only what followed the list
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "after-1"), ("ADDED", "after-2"), ("DELETED", "before")]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and versions[0] > int(version)
    assert await raw_watch(cluster, str(versions[-1])) == []  # resumed from the last event: nothing again
    selected = await raw_watch(cluster, f"{version}&fieldSelector=metadata.name%3Dafter-2")  # per watcher
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in selected] == [("ADDED", "after-2")]

    (error,) = await raw_watch(cluster, "1")  # from before this cache's window
    assert error["type"] == "ERROR"
    status = error["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
    assert status["message"].startswith("too old resource version: 1 (")

    code, out, err = await cluster.kubectl(
        "get", "--raw", "/api/v1/namespaces/default/services?watch=true&resourceVersion=abc")
    assert code == 1 and "BadRequest" in err and "resourceVersion" in err, (out, err)

    # kubectl get -w: its list, then its watch from the list's version, sees the next change once
    proc = await asyncio.create_subprocess_exec(
        "kubectl", "get", "services", "-w", "--output-watch-events", "--no-headers",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=cluster.env())
    assert proc.stdout is not None
    try:
        first = sorted([(await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()[:2]
                        for _ in range(2)])
        assert first == [["ADDED", "after-1"], ["ADDED", "after-2"]]
        await create_service(cluster, "later")
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()
        assert line[:2] == ["ADDED", "later"], line
    finally:
        proc.kill()
        await proc.wait()


async def test_the_python_client_gets_410_for_a_too_old_version_and_relisting_works(cluster):
    kubernetes = pytest.importorskip("kubernetes")
    await create_service(cluster, "one")

    def too_old() -> tuple[int, str]:
        client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        core = kubernetes.client.CoreV1Api(client)
        try:
            for _ in kubernetes.watch.Watch().stream(core.list_namespaced_service, "default",
                                                     resource_version="1", timeout_seconds=5):
                pass
        except kubernetes.client.ApiException as error:  # after the one retry the client makes on a 410
            return error.status, error.reason
        return 0, "no error"

    code, reason = await asyncio.to_thread(too_old)
    assert code == 410 and reason.startswith("Expired: too old resource version: 1 ("), reason

    def relist_then_watch() -> list[tuple[str, str]]:
        client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        core = kubernetes.client.CoreV1Api(client)
        version = core.list_namespaced_service("default").metadata.resource_version
        seen = []
        for event in kubernetes.watch.Watch().stream(core.list_namespaced_service, "default",
                                                     resource_version=version, timeout_seconds=30):
            seen.append((event["type"], event["object"].metadata.name))
            if event["object"].metadata.name == "two":
                break
        return seen

    watching = asyncio.create_task(asyncio.to_thread(relist_then_watch))
    await asyncio.sleep(1)
    await create_service(cluster, "two")
    assert await asyncio.wait_for(watching, 60) == [("ADDED", "two")]


async def test_a_hundred_concurrent_watchers_each_see_every_change(cluster):
    token = cluster.token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    names = [f"fan-{i}" for i in range(10)]
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(cluster.api, headers=headers, connector=connector, timeout=timeout) as http:
        async with http.get("/api/v1/namespaces/default/services") as reply:
            version = (await reply.json())["metadata"]["resourceVersion"]
        seen: list[list[tuple[str, str]]] = [[] for _ in range(100)]
        opened = [asyncio.Event() for _ in range(100)]

        async def follow(i: int) -> None:
            async with http.get("/api/v1/namespaces/default/services",
                                params={"watch": "true", "resourceVersion": version}) as reply:
                assert reply.status == 200
                opened[i].set()
                async for line in reply.content:
                    event = json.loads(line)
                    seen[i].append((event["type"], event["object"]["metadata"]["name"]))
                    if len(seen[i]) == 2 * len(names):
                        return

        tasks = [asyncio.create_task(follow(i)) for i in range(100)]
        try:
            await asyncio.wait_for(asyncio.gather(*(o.wait() for o in opened)), 60)
            for name in names:
                await create_service(cluster, name)
            for name in names:
                code, _, err = await cluster.kubectl("delete", "service", name)
                assert code == 0, err
            await asyncio.wait_for(asyncio.gather(*tasks), 120)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    expected = [("ADDED", n) for n in names] + [("DELETED", n) for n in names]
    assert all(s == expected for s in seen), [s for s in seen if s != expected][:1]


async def test_an_object_from_a_watch_can_be_written_back_with_its_resource_version(cluster):
    await test_kubectl.rolled_out(cluster)
    token = cluster.token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    path = "/apis/apps/v1/namespaces/default/deployments"
    async with aiohttp.ClientSession(cluster.api, headers=headers) as http:
        async with http.get(path) as reply:
            listed = (await reply.json())["metadata"]["resourceVersion"]
        code, _, err = await cluster.kubectl("scale", "deployment/web", "--replicas=3")
        assert code == 0, err

        async def last_seen() -> dict | None:
            async with http.get(path, params={"watch": "true", "resourceVersion": listed,
                                              "timeoutSeconds": "1"}) as reply:
                events = [json.loads(line) async for line in reply.content]
            done = [e["object"] for e in events if (e["object"].get("status") or {}).get("readyReplicas") == 3]
            return done[-1] if done else None

        async def caught_up() -> dict:
            for _ in range(60):  # until the watch has shown the third pod ready (status the controller computed)
                seen = await last_seen()  # and the stored object as it is (the controller also writes its progress)
                async with http.get(f"{path}/web") as reply:
                    stored_version = (await reply.json())["metadata"]["resourceVersion"]
                if seen is not None and int(seen["metadata"]["resourceVersion"]) >= int(stored_version):
                    return seen
            raise AssertionError(f"the watch never caught up with the stored version {stored_version}")

        for _ in range(5):  # as a client-go informer's user replaces it: retried on a conflict, as RetryOnConflict
            seen = await caught_up()  # does (the controller may write its progress between the watch and the PUT)
            seen["metadata"].setdefault("labels", {})["touched"] = "yes"
            async with http.put(f"{path}/web", json=seen) as reply:
                answer = await reply.json()
            if reply.status == 200:
                break
            assert (reply.status, answer["reason"]) == (409, "Conflict"), answer
        assert reply.status == 200, answer
        async with http.put(f"{path}/web", json=seen) as reply:  # the same version again: stale now
            body = await reply.json()
            assert (reply.status, body["reason"]) == (409, "Conflict"), body


async def test_the_python_client_lists_watches_from_the_list_and_writes_back_what_it_saw_without_conflict(cluster):
    """Every resourceVersion is the store's: the list's, the watch's events' (a status the controller computed
    included), and a write with the version of the last event the client saw is no 409."""
    kubernetes = pytest.importorskip("kubernetes")
    await test_kubectl.rolled_out(cluster)  # web: 2 replicas

    def list_watch_write() -> dict:
        client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        apps = kubernetes.client.AppsV1Api(client)
        listed = apps.list_namespaced_deployment("default")
        version = listed.metadata.resource_version
        apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})
        seen = []
        for event in kubernetes.watch.Watch().stream(apps.list_namespaced_deployment, "default",
                                                     resource_version=version, timeout_seconds=60):
            seen.append(event)
            if (event["object"].status.ready_replicas or 0) == 3:
                break
        while True:  # then until it is quiet (the controller writes the rollout's progress after it too)
            more = list(kubernetes.watch.Watch().stream(
                apps.list_namespaced_deployment, "default", timeout_seconds=3,
                resource_version=seen[-1]["object"].metadata.resource_version))
            if not more:
                break
            seen.extend(more)
        last = seen[-1]["object"]
        last.metadata.labels = {**(last.metadata.labels or {}), "touched": "yes"}
        written = apps.replace_namespaced_deployment("web", "default", last)  # the watch's version: no 409
        try:
            apps.replace_namespaced_deployment("web", "default", last)  # the same again: stale now
            stale = 0
        except kubernetes.client.ApiException as error:
            stale = error.status
        return {"version": int(version), "seen": [(e["type"], e["object"].metadata.name,
                                                   int(e["object"].metadata.resource_version)) for e in seen],
                "last": int(last.metadata.resource_version), "written": int(written.metadata.resource_version),
                "labels": written.metadata.labels, "stale": stale}

    result = await asyncio.wait_for(asyncio.to_thread(list_watch_write), 120)
    versions = [v for _, _, v in result["seen"]]
    assert {(t, n) for t, n, _ in result["seen"]} == {("MODIFIED", "web")}, result  # nothing the list had again
    assert versions == sorted(versions) and versions[0] > result["version"], result  # and nothing missed
    assert result["written"] > result["last"] and result["labels"]["touched"] == "yes", result
    assert result["stale"] == 409, result

"""Claims on the process driver: a claim is provisioned as a directory under the state dir, a pod's process finds
it in MESHD_VOLUME_<NAME>, its data outlives the pod, and reclaimPolicy Delete removes the directory."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import aiohttp
import pytest

from tests.integration.agent_harness import agent_options, api_headers, eventually, pods, started_agent

pytestmark = [pytest.mark.slow]

MANIFEST = textwrap.dedent("""\
    apiVersion: v1
    kind: PersistentVolumeClaim
    metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 10Mi}}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: writer}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox
        command: ["/bin/sh", "-c", "echo $POD_NAME >> $MESHD_VOLUME_DATA/log; exec sleep 3600"]
        volumeMounts: [{name: data, mountPath: /data}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
    """)


async def test_a_claim_is_a_directory_that_outlives_its_pod(tmp_path: Path, agent_id: str) -> None:
    agent = await started_agent(agent_options(tmp_path, agent_id, driver="process"))
    base = f"http://{agent.options.api}"
    try:
        async with aiohttp.ClientSession(headers=api_headers(agent)) as http:
            async with http.post(f"{base}/v1/apply", data=MANIFEST) as reply:
                assert reply.status == 200, await reply.text()

            async def claim() -> dict:
                async with http.get(f"{base}/api/v1/namespaces/default/persistentvolumeclaims/data") as r:
                    return await r.json()
            bound: dict = {}
            for _ in range(600):
                bound = await claim()
                if bound["status"]["phase"] == "Bound":
                    break
                await asyncio.sleep(0.1)
            assert bound["status"]["phase"] == "Bound", bound
            directory = tmp_path / "state" / "persistent-volumes" / bound["spec"]["volumeName"]
            await eventually(lambda: (directory / "log").exists() and (directory / "log").read_text() == "writer\n")
            agent.controller.delete_pod("default", "writer")
            await eventually(lambda: (directory / "log").read_text() == "writer\nwriter\n")
            await agent.controller.delete("Pod", "default", "writer")
            await eventually(lambda: not pods(agent))
            async with http.delete(f"{base}/api/v1/namespaces/default/persistentvolumeclaims/data") as reply:
                assert reply.status == 200, await reply.text()
            await eventually(lambda: not directory.exists() and not agent.controller.store.list("PersistentVolume"))
            async with http.get(f"{base}/api/v1/persistentvolumes") as reply:
                assert (await reply.json())["items"] == []
    finally:
        await agent.close(stop_pods=True)

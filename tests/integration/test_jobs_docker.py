"""A Job across an agent restart, on the real Docker engine: the next agent adopts the Job's running and
finished pods (none is removed or run twice) and the Job completes with exactly its completions."""

from __future__ import annotations

import textwrap

import pytest

from tests.integration.agent_harness import agent_options, eventually, pods, started_agent
from tests.integration.test_controller_docker import engine_containers

pytestmark = [pytest.mark.docker]

JOB = textwrap.dedent("""\
    apiVersion: batch/v1
    kind: Job
    metadata: {name: steps}
    spec:
      completions: 2
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
          - {name: main, image: meshd/busybox:latest, command: ["sh", "-c", "sleep 3"]}
    """)


def phases(agent) -> list[str]:
    return sorted(w.phase for w in pods(agent, "steps-"))


def job_counts(agent):
    record = agent.controller.objects[("Job", "default", "steps")]
    return agent.controller.batch.counts(record.obj)


async def test_an_agent_restart_adopts_a_jobs_pods_and_the_job_completes(tmp_path, agent_id, docker_client,
                                                                       busybox_image, pause_image):
    options = agent_options(tmp_path, agent_id)
    first = await started_agent(options)
    await first.controller.apply(JOB)
    await eventually(lambda: phases(first) == ["Running", "Succeeded"], timeout=60)
    finished = next(w.name for w in pods(first, "steps-") if w.phase == "Succeeded")
    running = next(w.name for w in pods(first, "steps-") if w.phase == "Running")
    await first.close(stop_pods=False)  # as if killed: the second pod keeps running
    second = await started_agent(agent_options(tmp_path, agent_id, api=options.api, dns=options.dns))
    try:
        await eventually(lambda: phases(second) == ["Succeeded", "Succeeded"], timeout=60)
        assert {w.name for w in pods(second, "steps-")} == {finished, running}
        counts = job_counts(second)
        assert (counts.succeeded, counts.active, counts.failed) == (2, 0, 0)
        await eventually(lambda: (r := second.controller.batch.runtime("default", "steps")).condition is not None
                         and r.condition.type == "Complete")
        assert len({c.labels["io.meshd.pod"] for c in engine_containers(docker_client, agent_id)}) == 2
    finally:
        await second.close(stop_pods=True)


"""Init containers and securityContext: the pure decisions, in tables (the init phase machine, the pod's
STATUS column as kubectl computes it, the effective securityContext, the kubelet's runAsNonRoot check, what
each driver enforces, Docker's create options)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from meshd.api.columns import pod_ready, pod_restarts, pod_status
from meshd.controller.initphase import InitState, InitStep, next_init_step, pod_phase, restart_policy_for
from meshd.driver.docker_security import docker_security_options, docker_user, needs_image_user
from meshd.driver.process_security import popen_credentials
from meshd.manifests import load_documents
from meshd.manifests.render import to_manifest
from meshd.model.objects import Container, PodSecurityContext, PodSpec, SecurityContext
from meshd.model.security import (
    EffectiveSecurity,
    SecuritySupport,
    effective_security,
    non_root_refusal,
    object_refusals,
    parse_image_user,
)

# --- the init phase machine ------------------------------------------------------------------------------

DONE = InitState("a", phase="terminated", exit_code=0, has_instance=True)
NEW_B = InitState("b")
SIDE_NEW = InitState("s", sidecar=True)
SIDE_STARTING = InitState("s", sidecar=True, phase="running", has_instance=True)
SIDE_UP = InitState("s", sidecar=True, phase="running", has_instance=True, started=True)
SIDE_CRASHED = InitState("s", sidecar=True, phase="waiting", has_instance=True, pending=True, started=True)

INIT_CASES: list[tuple[str, list[InitState], InitStep]] = [
    ("no init containers: the app starts", [], InitStep("done")),
    ("the first one starts", [InitState("a"), NEW_B], InitStep("start", "a")),
    ("one running is waited for", [InitState("a", phase="running", has_instance=True), NEW_B], InitStep("wait", "a")),
    ("created, not yet running: wait", [InitState("a", has_instance=True), NEW_B], InitStep("wait", "a")),
    ("a completed one lets the next start", [DONE, NEW_B], InitStep("start", "b")),
    ("all completed: the app starts", [DONE, InitState("b", phase="terminated", exit_code=0)], InitStep("done")),
    ("a failed one backing off is waited for",
     [InitState("a", phase="waiting", exit_code=1, has_instance=True, pending=True), NEW_B], InitStep("wait", "a")),
    ("a failed one not restarted (Never) fails the pod",
     [InitState("a", phase="terminated", exit_code=1, has_instance=True), NEW_B], InitStep("failed", "a")),
    ("a sidecar starts in its turn", [DONE, SIDE_NEW, NEW_B], InitStep("start", "s")),
    ("the next waits for a sidecar's startup probe", [DONE, SIDE_STARTING, NEW_B], InitStep("wait", "s")),
    ("a started sidecar lets the next start", [SIDE_UP, NEW_B], InitStep("start", "b")),
    ("a started sidecar is not waited for to complete", [DONE, SIDE_UP], InitStep("done")),
    ("a started sidecar that crashed does not hold the sequence", [SIDE_CRASHED, NEW_B], InitStep("start", "b")),
    ("a sidecar that failed before it started is waited for",
     [InitState("s", sidecar=True, has_instance=True, pending=True)], InitStep("wait", "s")),
]


@pytest.mark.parametrize(("states", "step"), [c[1:] for c in INIT_CASES], ids=[c[0] for c in INIT_CASES])
def test_next_init_step(states: list[InitState], step: InitStep) -> None:
    assert next_init_step(states) == step


PLAIN = Container(name="c", image="i")
SIDECAR = Container(name="c", image="i", restart_policy="Always")


@pytest.mark.parametrize(("pod_policy", "container", "init", "expected"), [
    ("Always", PLAIN, False, "Always"),
    ("Always", PLAIN, True, "OnFailure"),  # a completed init container is done
    ("OnFailure", PLAIN, True, "OnFailure"),
    ("Never", PLAIN, True, "Never"),
    ("Never", SIDECAR, True, "Always"),  # a sidecar always restarts
    ("Never", PLAIN, False, "Never"),
])
def test_restart_policy_for(pod_policy: str, container: Container, init: bool, expected: str) -> None:
    assert restart_policy_for(pod_policy, container, init=init) == expected


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"initialized": False, "init_failed": False, "app": [("waiting", None, False)]}, "Pending"),
    ({"initialized": False, "init_failed": True, "app": [("waiting", None, False)]}, "Failed"),
    ({"initialized": True, "init_failed": False, "app": [("running", None, False)]}, "Running"),
    ({"initialized": True, "init_failed": False, "app": [("waiting", 1, True)]}, "Running"),  # backing off
    ({"initialized": True, "init_failed": False, "app": [("terminated", 0, False)] * 2}, "Succeeded"),
    ({"initialized": True, "init_failed": False, "app": [("terminated", 0, False), ("terminated", 2, False)]},
     "Failed"),
    ({"initialized": True, "init_failed": False, "app": [("waiting", None, False)]}, "Pending"),  # unchanged
])
def test_pod_phase(kwargs: dict[str, Any], expected: str) -> None:
    assert pod_phase(current="Pending", **kwargs) == expected


# --- STATUS, READY and RESTARTS as kubectl prints them ---------------------------------------------------


def _pod(init: list[dict], app: list[dict], *, initialized: bool, sidecars: tuple[str, ...] = (),
         phase: str = "Pending", ready: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"name": "p"},
        "spec": {"initContainers": [{"name": c["name"], **({"restartPolicy": "Always"} if c["name"] in sidecars
                                                            else {})} for c in init],
                 "containers": [{"name": c["name"]} for c in app]},
        "status": {"phase": phase, "initContainerStatuses": init, "containerStatuses": app,
                   "conditions": [{"type": "Initialized", "status": str(initialized)},
                                  {"type": "Ready", "status": str(ready)}]},
    }


def _cs(name: str, state: dict, *, ready: bool = False, started: bool = False, restarts: int = 0) -> dict:
    return {"name": name, "state": state, "ready": ready, "started": started, "restartCount": restarts,
            "lastState": {}}


WAITING_INIT = {"waiting": {"reason": "PodInitializing"}}
RUNNING = {"running": {}}
COMPLETED = {"terminated": {"exitCode": 0, "reason": "Completed"}}
APP_WAITING = _cs("app", WAITING_INIT)

STATUS_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("the first init container runs",
     _pod([_cs("a", RUNNING), _cs("b", WAITING_INIT)], [APP_WAITING], initialized=False), "Init:0/2", "0/1"),
    ("the second runs", _pod([_cs("a", COMPLETED), _cs("b", RUNNING)], [APP_WAITING], initialized=False),
     "Init:1/2", "0/1"),
    ("one backing off", _pod([_cs("a", {"waiting": {"reason": "CrashLoopBackOff"}}, restarts=2)], [APP_WAITING],
                             initialized=False), "Init:CrashLoopBackOff", "0/1"),
    ("one failed", _pod([_cs("a", {"terminated": {"exitCode": 3, "reason": "Error"}})], [APP_WAITING],
                        initialized=False, phase="Failed"), "Init:Error", "0/1"),
    ("one failed without a reason", _pod([_cs("a", {"terminated": {"exitCode": 3}})], [APP_WAITING],
                                         initialized=False), "Init:ExitCode:3", "0/1"),
    ("one can not be created", _pod([_cs("a", {"waiting": {"reason": "CreateContainerConfigError"}})], [APP_WAITING],
                                    initialized=False), "Init:CreateContainerConfigError", "0/1"),
    ("initialized, the app not yet started", _pod([_cs("a", COMPLETED)], [APP_WAITING], initialized=True),
     "PodInitializing", "0/1"),
    ("initialized and running", _pod([_cs("a", COMPLETED)], [_cs("app", RUNNING, ready=True)], initialized=True,
                                     phase="Running", ready=True), "Running", "1/1"),
    ("a started sidecar counts in READY and lets the next run",
     _pod([_cs("s", RUNNING, ready=True, started=True), _cs("b", RUNNING)], [APP_WAITING], initialized=False,
          sidecars=("s",)), "Init:1/2", "1/2"),
    ("a sidecar and the app running",
     _pod([_cs("s", RUNNING, ready=True, started=True)], [_cs("app", RUNNING, ready=True)], initialized=True,
          sidecars=("s",), phase="Running", ready=True), "Running", "2/2"),
]


@pytest.mark.parametrize(("pod", "status", "ready"), [c[1:] for c in STATUS_CASES], ids=[c[0] for c in STATUS_CASES])
def test_pod_status_and_ready_columns(pod: dict[str, Any], status: str, ready: str) -> None:
    assert (pod_status(pod), pod_ready(pod)) == (status, ready)


def test_restarts_count_the_init_containers_while_initializing_then_the_app_and_sidecars() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    crashing = _pod([_cs("a", {"waiting": {"reason": "CrashLoopBackOff"}}, restarts=4)], [APP_WAITING],
                    initialized=False)
    assert pod_restarts(crashing, now) == "4"
    done = _pod([_cs("a", COMPLETED, restarts=4), _cs("s", RUNNING, started=True, restarts=1)],
                [_cs("app", RUNNING, restarts=2)], initialized=True, sidecars=("s",))
    assert pod_restarts(done, now) == "3"  # the sidecar's and the app's, not the completed init container's


# --- securityContext ---------------------------------------------------------------------------------------


def _spec(pod: PodSecurityContext | None = None, own: SecurityContext | None = None, **kw: Any) -> PodSpec:
    return PodSpec(containers=(Container(name="app", image="i", security_context=own),), security_context=pod, **kw)


def test_the_containers_fields_override_the_pods() -> None:
    spec = _spec(PodSecurityContext(run_as_user=1000, run_as_group=3000, run_as_non_root=True, fs_group=2000,
                                    supplemental_groups=(4000, 2000)),
                 SecurityContext(run_as_user=1001, run_as_non_root=False, read_only_root_filesystem=True,
                                 allow_privilege_escalation=False))
    sc = effective_security(spec, spec.containers[0])
    assert (sc.run_as_user, sc.run_as_group, sc.run_as_non_root) == (1001, 3000, False)
    assert sc.read_only_root_filesystem and sc.no_new_privileges and sc.groups == (2000, 4000)
    assert effective_security(_spec(), _spec().containers[0]) == EffectiveSecurity()


POD = 'web_default(u)'
NON_ROOT = EffectiveSecurity(run_as_non_root=True)


@pytest.mark.parametrize(("sc", "image_user", "expected"), [
    (EffectiveSecurity(), "", None),
    (NON_ROOT, "", "container has runAsNonRoot and image will run as root"),
    (NON_ROOT, "0:0", "container has runAsNonRoot and image will run as root"),
    (NON_ROOT, "1000", None),
    (NON_ROOT, "1000:1000", None),
    (NON_ROOT, "nobody", "container has runAsNonRoot and image has non-numeric user (nobody), cannot verify"),
    (EffectiveSecurity(run_as_non_root=True, run_as_user=0), "1000", "container's runAsUser breaks non-root policy"),
    (EffectiveSecurity(run_as_non_root=True, run_as_user=5), "", None),
])
def test_run_as_non_root_as_the_kubelet_checks_it(sc: EffectiveSecurity, image_user: str, expected: str | None) -> None:
    refusal = non_root_refusal(sc, image_user, pod=POD, container="app")
    if expected is None:
        assert refusal is None
    else:
        assert refusal is not None and refusal.startswith(expected)
        assert refusal.endswith(f'(pod: "{POD}", container: app)')


def test_parse_image_user() -> None:
    assert [parse_image_user(u) for u in ("", "0", "1000:50", "app", "app:grp")] == [
        (0, ""), (0, "0"), (1000, "1000"), (None, "app"), (None, "app")]


@pytest.mark.parametrize(("sc", "image_user", "expected"), [
    (EffectiveSecurity(), "", {}),
    (EffectiveSecurity(run_as_user=1000), "", {"user": "1000"}),
    (EffectiveSecurity(run_as_user=1000, run_as_group=3000), "", {"user": "1000:3000"}),
    (EffectiveSecurity(run_as_group=3000), "app", {"user": "app:3000"}),  # the image's user, the group asked
    (EffectiveSecurity(run_as_group=3000), "", {"user": "0:3000"}),
    (EffectiveSecurity(fs_group=2000, supplemental_groups=(4000,)), "", {"group_add": ["2000", "4000"]}),
    (EffectiveSecurity(read_only_root_filesystem=True, no_new_privileges=True), "",
     {"read_only": True, "security_opt": ["no-new-privileges"]}),
    (EffectiveSecurity(capabilities_add=("NET_ADMIN",), capabilities_drop=("ALL",)), "",
     {"cap_add": ["NET_ADMIN"], "cap_drop": ["ALL"]}),
    (EffectiveSecurity(privileged=True, host_pid=True, host_ipc=True), "",
     {"privileged": True, "pid_mode": "host", "ipc_mode": "host"}),
])
def test_docker_create_options(sc: EffectiveSecurity, image_user: str, expected: dict[str, Any]) -> None:
    assert docker_security_options(sc, image_user) == expected


def test_the_image_user_is_read_only_when_it_matters() -> None:
    assert not needs_image_user(EffectiveSecurity(run_as_user=5, run_as_non_root=True))
    assert needs_image_user(EffectiveSecurity(run_as_non_root=True))
    assert needs_image_user(EffectiveSecurity(run_as_group=1))
    assert docker_user(EffectiveSecurity(), "app") is None


@pytest.mark.parametrize(("sc", "agent_uid", "expected"), [
    (EffectiveSecurity(), 0, {}),
    (EffectiveSecurity(run_as_user=1000, run_as_group=3000, fs_group=2000), 0,
     {"user": 1000, "group": 3000, "extra_groups": [2000]}),
    (EffectiveSecurity(run_as_user=1000), 0, {"user": 1000, "extra_groups": []}),  # none of the agent's groups
    (EffectiveSecurity(run_as_user=1000), 1000, {}),  # the agent's own user: nothing to change
])
def test_process_driver_credentials(sc: EffectiveSecurity, agent_uid: int, expected: dict[str, Any]) -> None:
    assert popen_credentials(sc, agent_uid=agent_uid) == expected


def _load(doc: str) -> Any:
    return load_documents(doc).objects[0]


DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      SPEC
      containers:
      - name: web
        image: i
        securityContext: {CONTAINER}
"""


@pytest.mark.parametrize(("spec", "container", "support", "expected"), [
    ("", "{privileged: true}", SecuritySupport(),
     [("spec.template.spec.containers.0.securityContext.privileged", "--allow-privileged")]),
    ("", "{privileged: true}", SecuritySupport(allow_privileged=True), []),
    ("hostPID: true", "{}", SecuritySupport(), [("spec.template.spec.hostPID", "--allow-privileged")]),
    ("hostIPC: true", "{}", SecuritySupport(allow_privileged=True), []),
    ("hostNetwork: true", "{}", SecuritySupport(), [("spec.template.spec.hostNetwork", "--allow-privileged")]),
    ("hostNetwork: true", "{}", SecuritySupport(allow_privileged=True), [("spec.template.spec.hostNetwork", "bridge")]),
    ("", "{readOnlyRootFilesystem: true, runAsUser: 5}", SecuritySupport(driver="process", agent_uid=0),
     [("spec.template.spec.containers.0.securityContext.readOnlyRootFilesystem", "process driver")]),
    ("", "{runAsUser: 5}", SecuritySupport(driver="process", agent_uid=1000),
     [("spec.template.spec.containers.0.securityContext.runAsUser", "unless the agent runs as root")]),
    ("", "{runAsUser: 1000, allowPrivilegeEscalation: false}", SecuritySupport(driver="process", agent_uid=1000),
     []),
    ("securityContext: {fsGroup: 5}", "{capabilities: {drop: [ALL]}}", SecuritySupport(driver="process", agent_uid=7),
     [("spec.template.spec.securityContext.fsGroup", "unless the agent runs as root"),
      ("spec.template.spec.containers.0.securityContext.capabilities", "process driver")]),
    ("securityContext: {runAsNonRoot: true, fsGroup: 5}", "{capabilities: {drop: [ALL]}}", SecuritySupport(), []),
])
def test_what_a_driver_refuses_at_apply(spec: str, container: str, support: SecuritySupport,
                                        expected: list[tuple[str, str]]) -> None:
    obj = _load(DEPLOY.replace("SPEC", spec).replace("CONTAINER", container[1:-1]))
    found = [(".".join(map(str, path)), why) for path, why in object_refusals(obj, support)]
    assert len(found) == len(expected), found
    for (path, why), (want_path, words) in zip(found, expected):
        assert path == want_path and words in why


def test_init_containers_and_security_contexts_render_and_load_back() -> None:
    pod = _load("""\
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  securityContext: {runAsUser: 1000, fsGroup: 2000, supplementalGroups: [4000], seccompProfile: {type: RuntimeDefault}}
  initContainers:
  - {name: seed, image: i, command: [sh]}
  - {name: side, image: i, restartPolicy: Always, startupProbe: {exec: {command: ['true']}}}
  containers:
  - name: app
    image: i
    securityContext: {runAsNonRoot: true, capabilities: {add: [cap_net_admin]}, allowPrivilegeEscalation: false}
""")
    rendered = to_manifest(pod)
    assert [c["name"] for c in rendered["spec"]["initContainers"]] == ["seed", "side"]
    assert rendered["spec"]["initContainers"][1]["restartPolicy"] == "Always"
    assert pod.spec.containers[0].security_context.capabilities_add == ("NET_ADMIN",)
    assert rendered["spec"]["securityContext"]["fsGroup"] == 2000
    assert load_documents(__import__("yaml").safe_dump(rendered)).objects[0] == pod

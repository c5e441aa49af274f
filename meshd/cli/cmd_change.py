"""`meshd apply`, `delete`, `scale`, `rollout`, `logs`, `top`: the commands that act through the agent."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from meshd.cli.client import AgentUnreachable, ApiClient, ApiError
from meshd.cli.common import (
    CliError,
    api_option,
    client,
    files_option,
    get_object,
    list_objects,
    namespace_option,
    namespace_or_default,
    not_found,
    parse_duration,
)
from meshd.cli.files import read_manifests
from meshd.cli.kinds import DEPLOYMENT, POD, REPLICASET, Kind, kind_by_name, resolve_kind

Obj = dict[str, Any]
AGENT_RESTART_GRACE = 30.0  # seconds `rollout status` waits for an agent that went away mid-rollout


def _display(kind_name: str) -> str:
    kind = kind_by_name(kind_name)
    return kind.display if kind else kind_name.lower()


def _manifests(files: tuple[str, ...], recursive: bool) -> list[tuple[str, str]]:
    return read_manifests(files, recursive=recursive, read_stdin=sys.stdin.read)


def _post_each(
    route: str,
    files: tuple[str, ...],
    recursive: bool,
    namespace: str | None,
    api: str | None,
    *,
    delete: bool,
    ignore_not_found: bool = False,
) -> None:
    """POST each file in turn (errors name the file); the first rejected file stops the rest. Objects a
    delete did not find are reported on stderr and make the exit status 1, unless ignore_not_found."""
    agent = client(api)
    missing = 0
    for text, source in _manifests(files, recursive):
        query = {"source": source, **({"namespace": namespace} if namespace else {})}
        missing += _report(agent.post_yaml(route, text, query), delete=delete, source=source,
                           ignore_not_found=ignore_not_found)
    if missing:
        sys.exit(1)


def _report(answer: Any, *, delete: bool = False, source: str = "", ignore_not_found: bool = False) -> int:
    """Print apply/delete results kubectl-style; warnings to stderr. Returns how many were not found."""
    answer = answer if isinstance(answer, dict) else {}
    for warning in answer.get("warnings") or []:
        click.echo(f"Warning: {warning}", err=True)
    missing = 0
    for result in answer.get("results") or []:
        display, name, action = (
            _display(result.get("kind", "")),
            result.get("name", ""),
            result.get("action", ""),
        )
        if action == "not found":
            kind = kind_by_name(result.get("kind", ""))
            if not ignore_not_found:
                resource = kind.resource if kind else display
                where = f'error when deleting "{source}"'
                click.echo(f'Error from server (NotFound): {where}: {resource} "{name}" not found', err=True)
                missing += 1
            continue
        click.echo(f'{display} "{name}" {action}' if delete else f"{display}/{name} {action}")
    return missing


@click.command()
@files_option(required=True, help="A manifest file, a directory, or - for stdin.")
@click.option("-R", "--recursive", is_flag=True, help="Read directories given to -f recursively.")
@namespace_option
@api_option
def apply(files: tuple[str, ...], recursive: bool, namespace: str | None, api: str | None) -> None:
    """Create or update the objects in manifests (multi-document YAML or JSON)."""
    _post_each("/v1/apply", files, recursive, namespace, api, delete=False)


@click.command()
@click.argument("resource", required=False)
@click.argument("names", nargs=-1)
@files_option(required=False, help="Delete the objects in these manifests.")
@click.option("-R", "--recursive", is_flag=True, help="Read directories given to -f recursively.")
@click.option("-l", "--selector", default=None, help="Delete the objects of KIND matching a label selector.")
@click.option("--all", "all_", is_flag=True, help="Delete every object of KIND in the namespace.")
@click.option("--ignore-not-found", is_flag=True, help="An object that does not exist is not an error.")
@namespace_option
@api_option
def delete(
    resource: str | None,
    names: tuple[str, ...],
    files: tuple[str, ...],
    recursive: bool,
    selector: str | None,
    all_: bool,
    ignore_not_found: bool,
    namespace: str | None,
    api: str | None,
) -> None:
    """Delete objects: -f FILE, KIND NAME..., KIND/NAME, or KIND -l SELECTOR | --all."""
    if files:
        if resource:
            raise CliError("give either -f or KIND NAME, not both")
        _post_each("/v1/delete", files, recursive, namespace, api, delete=True,
                   ignore_not_found=ignore_not_found)
        return
    if not resource:
        raise CliError(
            "you must provide one or more resources by argument or filename (e.g. meshd delete deployment web)"
        )
    from meshd.cli.cmd_get import parse_targets

    agent = client(api)
    ns = namespace_or_default(namespace)
    targets: list[tuple[Kind, str]] = []
    for kind, wanted in parse_targets(resource, names):
        if not wanted:
            if not (selector or all_):
                raise CliError(
                    f"resource(s) were provided, but no name was specified (use --all or -l for every {kind.plural})"
                )
            wanted = [
                (o.get("metadata") or {}).get("name", "")
                for o in list_objects(agent, kind, ns, selector=selector)
            ]
        targets += [(kind, name) for name in wanted]
    if not targets:
        click.echo(f"No resources found in {ns} namespace.", err=True)
        return
    failed = False
    for kind, name in targets:
        try:
            answer = agent.request("DELETE", kind.object_path(ns, name))
        except ApiError as exc:
            if exc.status != 404:
                raise
            if not ignore_not_found:
                click.echo(not_found(kind, name), err=True)
                failed = True
            continue
        action = "deleted"
        try:
            action = json.loads(answer.body).get("action") or action
        except (ValueError, AttributeError):
            pass
        click.echo(f'{kind.display} "{name}" {action}')
    if failed:
        sys.exit(1)


def _workload(target: str, name: str | None, allowed: tuple[Kind, ...]) -> tuple[Kind, str]:
    """ "deployment/web" or ("deployment", "web") -> (kind, name), limited to the kinds allowed."""
    if "/" in target:
        if name:
            raise CliError("give TYPE/NAME or TYPE NAME, not both")
        kind_text, _, name = target.partition("/")
    else:
        kind_text = target
    if not name:
        raise CliError(f"expected TYPE/NAME (e.g. deployment/web), got {target!r}")
    kind = resolve_kind(kind_text)
    if kind not in allowed:
        raise CliError(f"{kind.plural} are not supported here (only {', '.join(k.plural for k in allowed)})")
    return kind, name


@click.command()
@click.argument("target")
@click.argument("name", required=False)
@click.option("--replicas", type=click.IntRange(min=0), required=True, help="The new number of replicas.")
@namespace_option
@api_option
def scale(target: str, name: str | None, replicas: int, namespace: str | None, api: str | None) -> None:
    """Set the replicas of a deployment or replicaset: scale deployment/web --replicas 3."""
    kind, obj_name = _workload(target, name, (DEPLOYMENT, REPLICASET))
    ns = namespace_or_default(namespace)
    try:
        client(api).send_json(
            "PATCH", kind.object_path(ns, obj_name) + "/scale", {"spec": {"replicas": replicas}}
        )
    except ApiError as exc:
        if exc.status == 404:
            raise CliError(not_found(kind, obj_name)) from None
        raise
    click.echo(f"{kind.display}/{obj_name} scaled")


# --- rollout ----------------------------------------------------------------------------------------------


@click.group()
def rollout() -> None:
    """Follow, undo, restart and list the rollouts of a deployment."""


@rollout.command("status")
@click.argument("target")
@click.argument("name", required=False)
@click.option("--timeout", default="0", help="Give up after this long (30s, 5m); 0 waits forever.")
@click.option("-w", "--watch/--no-watch", default=True, help="Follow until the rollout ends (default).")
@click.option("--interval", default=0.25, type=float, hidden=True)
@namespace_option
@api_option
def rollout_status(
    target: str,
    name: str | None,
    timeout: str,
    watch: bool,
    interval: float,
    namespace: str | None,
    api: str | None,
) -> None:
    """Follow a rollout until it completes (exit 0) or fails its progress deadline (exit 1)."""
    from meshd.cli.rollout import RolloutStatus
    from meshd.cli.rollout import rollout_status as decide

    kind, obj_name = _workload(target, name, (DEPLOYMENT,))
    ns = namespace_or_default(namespace)
    agent = client(api)
    limit = parse_duration(timeout)
    deadline = time.monotonic() + limit if limit > 0 else None
    last = None
    lost_since: float | None = None
    while True:
        try:
            status = decide(get_object(agent, kind, ns, obj_name))
            lost_since = None
        except AgentUnreachable as exc:
            # an agent restarting mid-rollout resumes it: keep following for a while, as a user would
            if last is None or (
                lost_since is not None and time.monotonic() - lost_since > AGENT_RESTART_GRACE
            ):
                raise
            if lost_since is None:
                click.echo(f"meshd: lost the agent ({exc.reason}); waiting for it to come back...", err=True)
                lost_since = time.monotonic()
            status = RolloutStatus(last)
        if status.failed:
            raise CliError(status.message)
        if status.message != last:
            click.echo(status.message)
            last = status.message
        if status.done or not watch:
            return
        if deadline is not None and time.monotonic() >= deadline:
            raise CliError("timed out waiting for the condition")
        time.sleep(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))


def _rollout_action(
    target: str, name: str | None, namespace_: str | None, api: str | None, action: str, body: Obj
) -> str:
    kind, obj_name = _workload(target, name, (DEPLOYMENT,))
    ns = namespace_or_default(namespace_)
    try:
        client(api).send_json("POST", f"{kind.object_path(ns, obj_name)}/rollout/{action}", body)
    except ApiError as exc:
        if exc.status == 404:
            raise CliError(not_found(kind, obj_name)) from None
        raise
    return f"{kind.display}/{obj_name}"


@rollout.command("undo")
@click.argument("target")
@click.argument("name", required=False)
@click.option(
    "--to-revision",
    type=click.IntRange(min=0),
    default=None,
    help="The revision to go back to (default: the previous).",
)
@namespace_option
@api_option
def rollout_undo(
    target: str, name: str | None, to_revision: int | None, namespace: str | None, api: str | None
) -> None:
    """Roll a deployment back to its previous (or a given) revision."""
    body = {"toRevision": to_revision} if to_revision else {}
    click.echo(f"{_rollout_action(target, name, namespace, api, 'undo', body)} rolled back")


@rollout.command("restart")
@click.argument("target")
@click.argument("name", required=False)
@namespace_option
@api_option
def rollout_restart(target: str, name: str | None, namespace: str | None, api: str | None) -> None:
    """Re-create a deployment's pods with the same template (a rolling restart)."""
    click.echo(f"{_rollout_action(target, name, namespace, api, 'restart', {})} restarted")


@rollout.command("history")
@click.argument("target")
@click.argument("name", required=False)
@click.option(
    "--revision", type=click.IntRange(min=1), default=None, help="Show this revision's pod template."
)
@namespace_option
@api_option
def rollout_history(
    target: str, name: str | None, revision: int | None, namespace: str | None, api: str | None
) -> None:
    """List a deployment's revisions."""
    from meshd.cli.describe import describe_pod_template
    from meshd.cli.rollout import format_history, history_revisions

    kind, obj_name = _workload(target, name, (DEPLOYMENT,))
    ns = namespace_or_default(namespace)
    try:
        answer = client(api).get_json(f"{kind.object_path(ns, obj_name)}/rollout/history")
    except ApiError as exc:
        if exc.status == 404:
            raise CliError(not_found(kind, obj_name)) from None
        raise
    revisions = history_revisions(answer)
    if revision is None:
        click.echo(format_history(f"{kind.display}/{obj_name}", revisions))
        return
    chosen = [r for r in revisions if r.revision == revision]
    if not chosen:
        raise CliError(f"unable to find the specified revision {revision}")
    click.echo(f"{kind.display}/{obj_name} with revision #{revision}")
    if chosen[0].template is not None:
        click.echo(describe_pod_template(chosen[0].template))
    else:
        click.echo("Pod Template:\n  Images:  " + (", ".join(chosen[0].images) or "<none>"))


# --- logs and top -----------------------------------------------------------------------------------------


def _first_pod(agent: ApiClient, kind: Kind, ns: str, name: str) -> str:
    """The pod kubectl would pick for `logs deployment/NAME`: the oldest running one the workload selects."""
    workload = get_object(agent, kind, ns, name)
    labels = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in labels.items()) or None
    pods = list_objects(agent, POD, ns, selector=selector)
    if not pods:
        raise CliError(f"no pods found for {kind.display}/{name}")
    pods.sort(
        key=lambda p: (
            (p.get("status") or {}).get("phase") != "Running",
            (p.get("metadata") or {}).get("creationTimestamp") or "",
        )
    )
    return str((pods[0].get("metadata") or {}).get("name", ""))


@click.command()
@click.argument("pod")
@click.argument("container_arg", required=False)
@click.option("-c", "--container", default=None, help="The container (needed when the pod has several).")
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new output.")
@click.option("--tail", type=int, default=-1, help="Only the last N lines (-1: all).")
@click.option("-p", "--previous", is_flag=True,
              help="The output of the container's previous instance (before its last restart).")
@namespace_option
@api_option
def logs(
    pod: str,
    container_arg: str | None,
    container: str | None,
    follow: bool,
    tail: int,
    previous: bool,
    namespace: str | None,
    api: str | None,
) -> None:
    """Print a pod's container output: logs POD|deployment/NAME|rs/NAME [-c CONTAINER] [-f] [-p] [--tail N]"""
    agent = client(api)
    ns = namespace_or_default(namespace)
    if "/" in pod:
        kind_text, _, name = pod.partition("/")
        kind = resolve_kind(kind_text)
        if kind.kind == "Pod":
            pod = name
        elif kind in (DEPLOYMENT, REPLICASET):
            pod = _first_pod(agent, kind, ns, name)
        else:
            raise CliError("logs takes a pod (NAME or pod/NAME) or a workload (deployment/NAME, rs/NAME)")
    chosen = container or container_arg or _default_container(agent, ns, pod)
    query = {
        "container": chosen,
        "follow": 1 if follow else None,
        "tailLines": tail if tail >= 0 else None,
        "previous": 1 if previous else None,
    }
    path = f"{POD.object_path(ns, pod)}/log"
    out = sys.stdout.buffer
    try:
        for chunk in agent.stream(path, query):
            out.write(chunk)
            out.flush()
    except ApiError as exc:
        if exc.status == 404 and "not found" not in exc.message:
            raise CliError(f'Error from server (NotFound): pods "{pod}" not found') from None
        raise


DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


def default_container(pod: dict[str, Any]) -> tuple[str | None, str]:
    """kubectl's choice when no -c is given: the annotated default container, else the first; with the
    stderr note kubectl prints when the pod has several ("" when there is nothing to say)."""
    names = [str(c.get("name", "")) for c in (pod.get("spec") or {}).get("containers") or []]
    if len(names) < 2:
        return None, ""
    annotated = ((pod.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CONTAINER_ANNOTATION)
    chosen = annotated if annotated in names else names[0]
    return chosen, f'Defaulted container "{chosen}" out of: {", ".join(names)}'


def _default_container(agent: ApiClient, ns: str, pod: str) -> str | None:
    try:
        found = agent.get_json(POD.object_path(ns, pod))
    except ApiError:
        return None  # the log request reports a missing pod
    chosen, note = default_container(found if isinstance(found, dict) else {})
    if note:
        click.echo(note, err=True)
    return chosen


@click.command()
@click.argument("resource", type=click.Choice(["pods", "pod", "po"]))
@click.argument("name", required=False)
@namespace_option
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-l", "--selector", default=None)
@click.option("--containers", is_flag=True, help="Show each container's usage.")
@click.option("--sort-by", type=click.Choice(["cpu", "memory"]), default=None)
@click.option("--no-headers", is_flag=True)
@api_option
def top(
    resource: str,
    name: str | None,
    namespace: str | None,
    all_namespaces: bool,
    selector: str | None,
    containers: bool,
    sort_by: str | None,
    no_headers: bool,
    api: str | None,
) -> None:
    """Show the CPU and memory the pods use (from the agent's metrics.k8s.io API)."""
    from meshd.cli.top import top_pods

    ns = None if all_namespaces else namespace_or_default(namespace)
    base = "/apis/metrics.k8s.io/v1beta1"
    path = f"{base}/pods" if ns is None else f"{base}/namespaces/{ns}/pods"
    try:
        answer = client(api).get_json(path + (f"/{name}" if name else ""), {"labelSelector": selector})
    except ApiError as exc:
        if exc.status == 404 and name:
            raise CliError(f'podmetrics.metrics.k8s.io "{ns}/{name}" not found') from None
        if exc.status == 404:
            raise CliError("Metrics API not available") from None
        raise
    items = [answer] if name else list((answer or {}).get("items") or [])
    if not items:
        where = "" if ns is None else f" in {ns} namespace"
        click.echo(f"No resources found{where}.", err=True)
        return
    text = top_pods(items, containers=containers, all_namespaces=ns is None, sort_by=sort_by)
    click.echo(text.split("\n", 1)[1] if no_headers and "\n" in text else text)

"""`meshd`: the entry point (click group), its error handling, and `meshd agent` / `meshd up`."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from meshd.cli.client import AgentUnreachable, ApiError, listen_address
from meshd.cli.cmd_change import apply, delete, logs, rollout, scale, top
from meshd.cli.cmd_get import describe, get
from meshd.cli.cmd_token import token
from meshd.cli.common import CliError, files_option
from meshd.cli.files import InputError, expand_sources
from meshd.cli.kinds import UnknownKind


class MeshdGroup(click.Group):
    """Turns expected failures into one line on stderr and exit status 1 (never a traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AgentUnreachable as exc:
            _fail(ctx, f"meshd: {exc}")
        except ApiError as exc:
            _fail(ctx, f"error: {exc.message}")
        except (CliError, InputError, UnknownKind) as exc:
            _fail(ctx, str(exc) if str(exc).startswith("Error from server") else f"error: {exc}")
        except KeyboardInterrupt:
            ctx.exit(130)
        except BrokenPipeError:
            _quiet_stdout()
            ctx.exit(1)


def _version(ctx: click.Context, wanted: bool) -> None:
    if not wanted or ctx.resilient_parsing:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = version("meshd")
    except PackageNotFoundError:  # running from a source tree
        text = "(source tree)"
    click.echo(f"meshd {text}")
    ctx.exit(0)


def _fail(ctx: click.Context, message: str) -> None:
    click.echo(message, err=True)
    ctx.exit(1)


def _quiet_stdout() -> None:
    """After `meshd get ... | head`: no second BrokenPipeError when Python flushes stdout at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


@click.group(
    cls=MeshdGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}
)
@click.option(
    "--api",
    metavar="URL",
    default=None,
    help="The agent's API (default: $MESHD_API, else http://127.0.0.1:7700).",
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=lambda c, p, v: _version(c, v),
    help="Show the version and exit.",
)
def cli(api: str | None) -> None:
    """meshd: the core of Kubernetes on one machine. kubectl-like commands against the local agent."""


# --- agent and up -----------------------------------------------------------------------------------------


def agent_options(func: Any) -> Any:
    """The daemon's flags (shared by `agent` and `up`)."""
    options = [
        click.option(
            "--api",
            "api",
            metavar="ADDR:PORT",
            default=None,
            help="Serve the REST API here (default 127.0.0.1:7700).",
        ),
        click.option(
            "--dns", metavar="ADDR:PORT", default=None, help="Serve DNS here (default 127.0.0.1:8600)."
        ),
        click.option("--zone", default=None, help="The DNS zone (default cluster.local)."),
        click.option(
            "--state-dir",
            type=click.Path(file_okay=False),
            default=None,
            help="Desired state (default ~/.local/state/meshd).",
        ),
        click.option(
            "--driver",
            type=click.Choice(["docker", "process"]),
            default=None,
            help="Run containers on Docker (default) or as processes.",
        ),
        click.option(
            "--mdns", metavar="ADDR[,ADDR]|off", default=None, help="mDNS/DNS-SD interfaces (default: all)."
        ),
        click.option(
            "--backoff-initial",
            type=click.FloatRange(min=0),
            default=None,
            help="First crash-loop back-off, seconds (default 10).",
        ),
        click.option(
            "--backoff-max",
            type=click.FloatRange(min=0),
            default=None,
            help="Longest crash-loop back-off, seconds (default 300).",
        ),
        click.option(
            "--node-cpus",
            metavar="QUANTITY",
            default=None,
            help="CPU to admit pods against (e.g. 2 or 1500m).",
        ),
        click.option(
            "--node-memory", metavar="QUANTITY", default=None, help="Memory to admit pods against (e.g. 8Gi)."
        ),
        click.option(
            "--max-pods",
            type=click.IntRange(min=1),
            default=None,
            help="Pods the node runs at once; the rest stay Pending (default 110, the kubelet's).",
        ),
        click.option(
            "--dns-ttl",
            type=click.IntRange(min=0),
            default=None,
            help="TTL of DNS answers, seconds (default 5).",
        ),
        click.option(
            "--dns-upstream", metavar="ADDR[:PORT][,...]|off", default=None,
            help="Where the addresses of ExternalName targets outside the zone are asked (only those: meshd "
                 "recurses for nobody else; default: the host's /etc/resolv.conf).",
        ),
        click.option(
            "--sidecar/--no-sidecar", default=None, help="Run the node's sidecar proxy (default: on)."
        ),
        click.option(
            "--sidecar-metrics", metavar="ADDR:PORT", default=None, help="The sidecar's /metrics address."
        ),
        click.option(
            "--ingress-http", metavar="ADDR:PORT|off", default=None,
            help="Serve Ingresses over plain HTTP here (default: the external address, port 80).",
        ),
        click.option(
            "--ingress-https", metavar="ADDR:PORT|off", default=None,
            help="Serve Ingresses over HTTPS here (default: the external address, port 443).",
        ),
        click.option(
            "--host-names",
            type=click.Choice(["auto", "resolved", "hosts", "off"]),
            default=None,
            help="How apps on this host resolve the mesh's names: a systemd-resolved route for the zone, a block "
            "in /etc/hosts, or off (default: $MESHD_HOST_NAMES, else auto: resolved where it runs, else hosts).",
        ),
        click.option(
            "--store",
            metavar="https://HOST:PORT[,HOST:PORT...]",
            default=None,
            help="Share one control plane with other agents on this etcd (default: SQLite in the state dir); "
            "https:// with --store-ca/--store-cert/--store-key, or plain http:// (etcd:// is http://).",
        ),
        click.option("--store-ca", metavar="FILE", default=None,
                     help="With --store https://: the CA that signed etcd's certificate (default: the system's)."),
        click.option("--store-cert", metavar="FILE", default=None,
                     help="With --store https://: the client certificate etcd's --client-cert-auth asks for."),
        click.option("--store-key", metavar="FILE", default=None, help="The key of --store-cert."),
        click.option("--node-name", default=None, help="This node's name in the cluster (default: the host name)."),
        click.option(
            "--join", metavar="TOKEN", default=None,
            help="Join a cluster with a bootstrap token (the first agent prints one; `meshd token create` makes "
            "more): its agents are found over mDNS/DNS-SD, and the store's address comes from the cluster.",
        ),
        click.option(
            "--server", metavar="https://HOST:PORT", default=None,
            help="With --join: ask this agent of the cluster (no DNS-SD discovery).",
        ),
        click.option(
            "--join-timeout", type=click.FloatRange(min=0.1), default=None,
            help="With --join: how long to look for the cluster over DNS-SD, seconds (default 15).",
        ),
        click.option(
            "--token-ttl", metavar="DURATION", default=None,
            help="The first join token's lifetime, made by the agent that creates the cluster (default 24h; 0: "
            "never expires).",
        ),
        click.option(
            "--node-grace",
            type=click.FloatRange(min=1),
            default=None,
            help="With --store: a node whose Lease is older than this many seconds is NotReady (default 6).",
        ),
        click.option(
            "--leader-ttl",
            type=click.IntRange(min=2),
            default=None,
            help="With --store: the leader's etcd lease, seconds; a dead leader is replaced within it (default 5).",
        ),
        click.option(
            "--pod-eviction-timeout",
            type=click.FloatRange(min=0),
            default=None,
            help="With --store: the pods of a node NotReady for this many seconds are deleted and replaced on Ready "
            "nodes (default 5).",
        ),
        click.option(
            "--keep-expired-tokens",
            type=click.FloatRange(min=0),
            default=None,
            help="With --store: the leader deletes a bootstrap token's Secret this many seconds after it expired "
            "(meanwhile a node trying it is told it expired; default 3600, 0: at once, as Kubernetes' tokencleaner).",
        ),
        click.option(
            "--service-cluster-ip-range", metavar="CIDR", default=None,
            help="Where Service addresses come from. With --store: the cluster's range, chosen by the agent that "
            "creates the cluster and kept in the store for every node, whatever its driver (default: a /17 of "
            "10.96.0.0/12, by this host's agent slot); a joining agent takes the cluster's. Without --store: this "
            "agent's (default: its host slot's share of 127.64.0.0/10 or, with Docker, 10.213.128.0/17).",
        ),
        click.option(
            "--mesh-port",
            type=click.IntRange(1, 65535),
            default=None,
            help="With --store: the port of this node's mesh gateway on its InternalIP, where other nodes' sidecars "
            "reach its pods over mutual TLS (default 4143).",
        ),
        click.option(
            "--cert-validity",
            type=click.FloatRange(min=60),
            default=None,
            help="With --store: how long a node certificate is valid, seconds; it is issued again at 2/3 of that "
            "(default 86400).",
        ),
        click.option(
            "--external",
            metavar="ADDR[,ADDR]",
            default=None,
            help="Where LoadBalancer Services (at their port), NodePort Services (at their nodePort) and "
            "hostPorts listen for clients outside the mesh (default 127.0.0.1).",
        ),
        click.option(
            "--agent-id",
            default=None,
            help="Tell apart agents sharing one engine (default: from --state-dir).",
        ),
        click.option(
            "--allow-privileged",
            is_flag=True,
            default=None,
            help="Run pods that ask for securityContext.privileged, hostPID or hostIPC (refused at apply otherwise).",
        ),
        click.option("-v", "--verbose", count=True, help="Debug log output."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_agent_options(params: dict[str, Any], root_api: str | None) -> dict[str, Any]:
    """The AgentOptions fields the user set (the agent's own defaults apply to the others)."""
    values = dict(params)
    api = values.get("api") or root_api
    if api or os.environ.get("MESHD_API"):
        try:
            values["api"] = listen_address(api, os.environ)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    initial, longest = values.get("backoff_initial"), values.get("backoff_max")
    if initial is not None and longest is not None and initial > longest:
        raise CliError("--backoff-initial must not exceed --backoff-max")
    values["verbose"] = bool(values.get("verbose")) or None
    if values.get("store") is not None:
        from meshd.store.etcdclient import parse_store_url
        from meshd.store.etcdtls import StoreTls, check_flags

        try:
            check_flags(parse_store_url(values["store"]),
                        StoreTls(values.get("store_ca"), values.get("store_cert"), values.get("store_key")))
        except ValueError as exc:
            raise CliError(str(exc)) from None
    elif any(values.get(flag) for flag in ("store_ca", "store_cert", "store_key")):
        raise CliError("--store-ca, --store-cert and --store-key go with --store https://HOST:PORT (a node that "
                       "joins with --join gets them from the cluster)")
    _check_join(values)
    for flag in ("ingress_http", "ingress_https"):
        if values.get(flag) is not None:
            from meshd.controller.ingress import listen_address as ingress_listen

            try:
                ingress_listen(values[flag], "127.0.0.1", 80)
            except ValueError as exc:
                raise CliError(f"--{flag.replace('_', '-')}: {exc}") from None
    if values.get("service_cluster_ip_range") is not None:
        from meshd.cluster.servicerange import ServiceRangeError, parse_service_range

        try:
            parse_service_range(values["service_cluster_ip_range"])
        except ServiceRangeError as exc:
            raise CliError(str(exc)) from None
    if values.get("external") is not None:
        from meshd.external.listeners import parse_external

        try:
            parse_external(values["external"])
        except ValueError as exc:
            raise CliError(str(exc)) from None
    if values.get("node_cpus") is not None or values.get("node_memory") is not None:
        _check_quantities(values.get("node_cpus"), values.get("node_memory"))
    if values.get("dns_upstream") is not None:
        from meshd.dns.upstream import parse_servers

        try:
            parse_servers(values["dns_upstream"])
        except ValueError as exc:
            raise CliError(f"--dns-upstream {values['dns_upstream']}: {exc}") from None
    return {k: v for k, v in values.items() if v is not None}


def _check_join(values: dict[str, Any]) -> None:
    """--join, --server, --token-ttl: checked before the agent starts; --token-ttl becomes seconds."""
    from meshd.cluster.joining import server_url
    from meshd.cluster.tokens import parse, parse_ttl

    if values.get("join") is not None:
        if values.get("store") is not None:
            raise CliError("--join and --store: give one (a node given the store needs no token; --join learns it)")
        try:
            parse(values["join"])
        except ValueError as exc:
            raise CliError(f"--join: {exc}") from None
    if values.get("server") is not None:
        if values.get("join") is None:
            raise CliError("--server is for joining: give it with --join TOKEN")
        try:
            values["server"] = server_url(values["server"])
        except ValueError as exc:
            raise CliError(str(exc)) from None
    if values.get("token_ttl") is not None:
        from meshd.cluster.bootstrap import MAX_TTL

        try:
            values["token_ttl"] = parse_ttl(values["token_ttl"])
        except ValueError as exc:
            raise CliError(f"--token-ttl: {exc}") from None
        if values["token_ttl"] > MAX_TTL:
            raise CliError(f"--token-ttl: at most {MAX_TTL / 86400 / 365:g} years (0: never expires)")


def _check_quantities(cpus: str | None, memory: str | None) -> None:
    from meshd.manifests.quantity import QuantityError, parse_quantity

    for flag, value in (("--node-cpus", cpus), ("--node-memory", memory)):
        try:
            if value is not None and parse_quantity(value) <= 0:
                raise QuantityError("must be positive")
        except QuantityError as exc:
            raise CliError(f"{flag} {value}: {exc}") from None


def _run(params: dict[str, Any], files: list[str] | None = None) -> None:
    root_api = click.get_current_context().find_root().params.get("api")
    fields = build_agent_options(params, root_api)
    try:
        from meshd import agent
    except ImportError as exc:
        raise CliError(f"the agent is not available in this installation ({exc})") from None
    options = agent.AgentOptions(**fields)
    try:
        code = agent.run_agent(options) if files is None else agent.run_up(options, files)
    except KeyboardInterrupt:
        code = 130
    sys.exit(code or 0)


@cli.command("agent")
@agent_options
def agent_command(**params: Any) -> None:
    """Run the meshd daemon in the foreground (REST API, DNS, mDNS, controller)."""
    _run(params)


@cli.command("up")
@files_option(required=True, help="Manifests to apply (file, directory or -).")
@agent_options
def up_command(files: tuple[str, ...], **params: Any) -> None:
    """Run the agent and apply manifests in one foreground process; Ctrl-C stops and cleans up."""
    expand_sources(files)  # a missing file fails here, before the agent starts
    _run(params, list(files))


@cli.command("kubeconfig")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="The agent's state dir, which holds its token (default ~/.local/state/meshd).")
@click.option("--api", "api", metavar="URL", default=None,
              help="The agent's address (default: $MESHD_API, else where the state dir's agent last served, else "
                   "127.0.0.1:7700); written as https://.")
def kubeconfig_command(state_dir: str | None, api: str | None) -> None:
    """Print a kubeconfig for the agent (https with its CA, and its token), for kubectl and Kubernetes clients:
    `meshd kubeconfig > ~/.kube/meshd && KUBECONFIG=~/.kube/meshd kubectl get pods`."""
    from pathlib import Path

    import yaml

    from meshd.cli.client import resolve_api_url
    from meshd.cli.credentials import kubeconfig, plain_url, read_ca, read_token
    from meshd.state import CA_FILE, TOKEN_FILE, default_state_dir, read_api_address

    root_api = click.get_current_context().find_root().params.get("api")
    state = Path(state_dir).expanduser() if state_dir else default_state_dir()
    given = api or root_api or os.environ.get("MESHD_API") or read_api_address(state) or ""
    try:
        server = resolve_api_url(plain_url(given), os.environ)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    token = read_token(state)
    if token is None:
        raise CliError(f"no token in {state / TOKEN_FILE}: start `meshd agent` with this state dir first "
                       "(or pass --state-dir), and run this as the agent's user")
    ca = read_ca(state)
    if ca is None:
        click.echo(f"meshd: no CA in {state / CA_FILE} (an agent older than its TLS): the server is plain http, "
                   "over which kubectl sends no token", err=True)
    click.echo(yaml.safe_dump(kubeconfig(server=server, token=token, ca_pem=ca), sort_keys=False), nl=False)


for command in (apply, delete, get, describe, scale, rollout, logs, top, token):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """The `meshd` console script."""
    cli.main(args=argv, prog_name="meshd")


if __name__ == "__main__":
    main()

"""``linewatch keys init``, ``nodes list``, ``deploy`` (+ ``deploy status``) and ``rollback``.

``deploy`` takes a version from the MLflow registry (an alias, default
``production``, or a number), rolls it out to the chosen nodes and keeps each
node's progress in the database (``$LINEWATCH_DB_URL``, default
``sqlite:///var/linewatch.db``, migrated on first use). ``--watch`` keeps
following the alias and rolls out each version it moves to.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy.orm import Session, sessionmaker

from cloud.cli.app import app

if TYPE_CHECKING:  # the CLI imports its heavy modules only inside commands
    from cloud.deploy import (
        PackedBundle,
        RollbackResult,
        RolloutReport,
        Target,
        TargetOutcome,
        VersionDeployer,
    )
    from cloud.deploy.pusher import ClientOptions
    from cloud.deploy.settings import DeploySettings

keys_app = typer.Typer(help="The cloud's signing key pair.", no_args_is_help=True)
nodes_app = typer.Typer(help="Edge nodes as the database knows them.", no_args_is_help=True)
deploy_app = typer.Typer(
    help="Roll a registered model version out to edge nodes.", invoke_without_command=True
)
app.add_typer(keys_app, name="keys")
app.add_typer(nodes_app, name="nodes")
app.add_typer(deploy_app, name="deploy")

_DB_HELP = "Database URL (sqlite:///… or postgresql://…). [env LINEWATCH_DB_URL]"
_TRACKING_HELP = "MLflow tracking URI (default: MLFLOW_TRACKING_URI, else var/mlflow/mlflow.db)."
_NODES_HELP = "Node names (cam-07,cam-08) or addresses (10.0.0.7:50051,…), comma-separated."
# mTLS to the nodes: the deployer's certificate from `linewatch certs issue --deployer`.
TlsCert = Annotated[
    Path | None,
    typer.Option(
        "--tls-cert",
        help="Deployer certificate (default keys/pki/deployer-deployer.pem; LINEWATCH_TLS_CERT).",
    ),
]
TlsKey = Annotated[
    Path | None,
    typer.Option(
        "--tls-key",
        help="Deployer key (default keys/pki/deployer-deployer.key; LINEWATCH_TLS_KEY).",
    ),
]
TlsCa = Annotated[
    Path | None,
    typer.Option("--tls-ca", help="Plant CA (default keys/pki/ca.pem; LINEWATCH_TLS_CA)."),
]
Insecure = Annotated[
    bool, typer.Option("--insecure", help="Plaintext gRPC to lab nodes started --insecure.")
]


def _sessions(db: str | None, *, create: bool) -> sessionmaker[Session]:
    """A session factory on a migrated database; ``create`` migrates a new one first."""
    from cloud.db.migrate import require_migrated, upgrade
    from cloud.db.session import make_engine, make_session_factory
    from cloud.deploy.settings import load_deploy_settings

    url = load_deploy_settings(db_url=db).db_url
    if create:
        upgrade(url)
    else:
        require_migrated(url)
    return make_session_factory(make_engine(url))


@keys_app.command("init")
def keys_init(
    out: Annotated[Path, typer.Option("--out", help="Folder for signing.key and signing.pub.")] = (
        Path("keys")
    ),
) -> None:
    """Create the cloud's Ed25519 signing key pair (never overwrites one)."""
    from cloud.signing import generate_key_pair

    pair = generate_key_pair(out)
    typer.echo(f"private key {pair.private_key} (mode 600): keep it on the cloud, back it up")
    typer.echo(f"public key  {pair.public_key}: give it to every node as --trusted-key")
    typer.echo(f"key id {pair.key_id}")


@nodes_app.command("list")
def nodes_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
    db: Annotated[str | None, typer.Option("--db", help=_DB_HELP)] = None,
) -> None:
    """Nodes, their addresses, model versions and whether they are online."""
    from cloud.db.queries import list_nodes

    with _sessions(db, create=False)() as session:
        nodes = list_nodes(session)
    if as_json:
        typer.echo(json.dumps([node.to_json() for node in nodes], indent=1))
        return
    if not nodes:
        typer.echo("no nodes yet: they appear with their first MQTT heartbeat")
        return
    typer.echo(f"{'node':<20} {'line':<12} {'address':<22} {'model':<24} online")
    for node in nodes:
        model = f"{node.model_name}:{node.model_version}" if node.model_name else "-"
        online = "yes" if node.online else "no"
        typer.echo(f"{node.node:<20} {node.line:<12} {node.grpc_address:<22} {model:<24} {online}")


@deploy_app.callback()
def deploy(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option("--name", help="Registered model name.")] = None,
    alias: Annotated[str | None, typer.Option("--alias", help="Alias (default production).")] = (
        None
    ),
    version: Annotated[int | None, typer.Option("--version", min=1, help="Version number.")] = None,
    nodes: Annotated[str | None, typer.Option("--nodes", help=_NODES_HELP)] = None,
    line: Annotated[str | None, typer.Option("--line", help="Every node of this line.")] = None,
    canary: Annotated[
        int, typer.Option("--canary", min=0, help="Nodes first; a failure among them stops.")
    ] = 0,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", min=1, help="Nodes updated at once.")
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Keep following the alias; roll out when it moves.")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between alias checks (--watch).")
    ] = 15.0,
    db: Annotated[str | None, typer.Option("--db", help=_DB_HELP)] = None,
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help=_TRACKING_HELP)] = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    tls_ca: TlsCa = None,
    insecure: Insecure = False,
    valid_for: Annotated[
        str, typer.Option("--valid-for", help="How long nodes accept the signed release.")
    ] = "7d",
) -> None:
    """Roll a registered version out: canaries first, then the rest, recorded per node."""
    if ctx.invoked_subcommand is not None:
        return
    name = _check_choice(name, alias=alias, version=version, watch=watch)
    from cloud.deploy import resolve_targets
    from cloud.deploy.settings import load_deploy_settings
    from cloud.deploy.targets import parse_node_list
    from cloud.release import parse_validity

    validity = parse_validity(valid_for)
    settings = load_deploy_settings(
        db_url=db,
        deploy_concurrency=concurrency,
        **_tls_overrides(tls_cert, tls_key, tls_ca, insecure),
    )
    options = settings.client_options()  # missing certificates stop us before any work
    sessions = _sessions(settings.db_url, create=True)
    node_list = parse_node_list(nodes)
    deployer = _deployer(
        name,
        settings,
        options,
        sessions,
        tracking_uri=tracking_uri,
        canary=canary,
        valid_for=validity,
    )
    if not watch:
        targets = resolve_targets(nodes=node_list, line=line, session_factory=sessions)
        report = deployer.deploy(
            targets, version=version, alias=None if version else alias or "production"
        )
        _show_report(report)
        report.raise_for_failures()
        return
    _watch(
        deployer,
        alias or "production",
        interval,
        lambda: resolve_targets(nodes=node_list, line=line, session_factory=sessions),
    )


def _check_choice(name: str | None, *, alias: str | None, version: int | None, watch: bool) -> str:
    """The model name, once the flags that choose a version agree (usage errors otherwise)."""
    if name is None:
        msg = "give the model: --name line3"
        raise typer.BadParameter(msg, param_hint="--name")
    if alias is not None and version is not None:
        msg = "give --alias or --version, not both"
        raise typer.BadParameter(msg, param_hint="--alias")
    if watch and version is not None:
        msg = "--watch follows an alias; drop --version (or give --alias)"
        raise typer.BadParameter(msg, param_hint="--watch")
    return name


def _tls_overrides(
    cert: Path | None, key: Path | None, ca: Path | None, insecure: bool
) -> dict[str, object]:
    """The TLS flags as settings overrides; an absent flag leaves the environment's value."""
    return {"tls_cert": cert, "tls_key": key, "tls_ca": ca, "insecure": insecure or None}


def _deployer(
    name: str,
    settings: DeploySettings,
    options: ClientOptions,
    sessions: sessionmaker[Session],
    *,
    tracking_uri: str | None,
    canary: int,
    valid_for: timedelta,
) -> VersionDeployer:
    """The deploy service for ``name``, printing the bundle and each node as they go."""
    from cloud.cli.commands.registry import quiet_mlflow
    from cloud.deploy import VersionDeployer
    from cloud.registry import load_registry_settings

    registry = load_registry_settings(tracking_uri=tracking_uri)
    quiet_mlflow()
    return VersionDeployer(
        name,
        registry=registry,
        session_factory=sessions,
        options=options,
        canary=canary,
        concurrency=settings.deploy_concurrency,
        requested_by="cli",
        on_start=_show_start,
        on_outcome=_show_outcome,
        signing_key=settings.signing_key,
        valid_for=valid_for,
    )


def _show_start(packed: PackedBundle, targets: Sequence[Target]) -> None:
    typer.echo(f"deploying {packed.label} ({packed.size / 1e6:.2f} MB) to {len(targets)} nodes")


def _show_outcome(outcome: TargetOutcome) -> None:
    sent = f"{outcome.bytes_sent / 1e6:.2f} MB"
    typer.echo(f"  {outcome.target.name:<22} {outcome.state:<10} {sent:>9}  {outcome.detail}")


def _show_report(report: RolloutReport) -> None:
    typer.echo(f"deployment {report.deployment_id}: {report.state} in {report.seconds:.1f}s")


def _watch(
    deployer: VersionDeployer, alias: str, interval: float, targets: Callable[[], list[Target]]
) -> None:
    """Follow ``alias`` (``watch_alias``) until SIGINT or SIGTERM, printing as it goes."""
    from cloud.deploy import watch_alias

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    typer.echo(f"watching {deployer.name}@{alias} every {interval:g}s (Ctrl-C stops)")
    watch_alias(
        deployer,
        alias,
        targets,
        stop,
        interval_s=interval,
        on_move=lambda current: typer.echo(f"{deployer.name}@{alias} is version {current}"),
        on_rollout=_show_report,
        on_error=lambda exc: typer.echo(f"error: {exc}; still watching", err=True),
    )
    typer.echo("watch stopped")


@deploy_app.command("status")
def deploy_status(
    deployment_id: Annotated[
        int | None, typer.Option("--id", help="A deployment; default the latest.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    db: Annotated[str | None, typer.Option("--db", help=_DB_HELP)] = None,
) -> None:
    """A deployment's state and every node's progress and outcome."""
    from cloud.deploy.record import deployment_status
    from cloud.errors import ConfigError

    with _sessions(db, create=False)() as session:
        view = deployment_status(session, deployment_id)
    if view is None:
        which = f"deployment {deployment_id}" if deployment_id else "any deployment"
        msg = f"no record of {which}; run `linewatch deploy --name …` first"
        raise ConfigError(msg)
    if as_json:
        typer.echo(json.dumps(view.to_json(), indent=1))
        return
    finished = view.finished_at.isoformat(timespec="seconds") if view.finished_at else "running"
    what = f"{view.model_name}:{view.model_version}" if view.kind == "rollout" else "rollback"
    typer.echo(f"deployment {view.id}: {what} {view.state} ({finished})")
    for target in view.targets:
        sent = f"{target.bytes_sent / 1e6:.2f}/{target.bytes_total / 1e6:.2f} MB"
        typer.echo(f"  {target.node:<22} {target.state:<10} {sent:>14}  {target.outcome}")


@app.command()
def rollback(
    node: Annotated[str | None, typer.Option("--node", help=_NODES_HELP)] = None,
    line: Annotated[str | None, typer.Option("--line", help="Every node of this line.")] = None,
    db: Annotated[str | None, typer.Option("--db", help=_DB_HELP)] = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    tls_ca: TlsCa = None,
    insecure: Insecure = False,
) -> None:
    """Send nodes back to the bundle they ran before the current one (recorded per node)."""
    from cloud.deploy import resolve_targets, roll_back
    from cloud.deploy.settings import load_deploy_settings
    from cloud.deploy.targets import parse_node_list

    settings = load_deploy_settings(
        db_url=db, **_tls_overrides(tls_cert, tls_key, tls_ca, insecure)
    )
    options = settings.client_options()  # missing certificates stop us before any work
    sessions = _sessions(settings.db_url, create=True)
    targets = resolve_targets(nodes=parse_node_list(node), line=line, session_factory=sessions)
    report = roll_back(
        targets,
        session_factory=sessions,
        options=options,
        requested_by="cli",
        on_result=_show_rollback,
    )
    record_id = report.deployment_id
    typer.echo(f"rollback {record_id}: see `linewatch deploy status --id {record_id}`")
    report.raise_for_failures()


def _show_rollback(result: RollbackResult) -> None:
    state = "failed     " if result.state == "failed" else ""
    typer.echo(f"  {result.target.name:<22} {state}{result.detail}")

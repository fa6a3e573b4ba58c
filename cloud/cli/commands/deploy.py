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
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy.orm import Session, sessionmaker

from cloud.cli.app import app

if TYPE_CHECKING:  # the CLI imports its heavy modules only inside commands
    from cloud.deploy.settings import DeploySettings
    from cloud.deploy.targets import Target
    from cloud.registry import RegistrySettings

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
) -> None:
    """Roll a registered version out: canaries first, then the rest, recorded per node."""
    if ctx.invoked_subcommand is not None:
        return
    if name is None:
        msg = "give the model: --name line3"
        raise typer.BadParameter(msg, param_hint="--name")
    if alias is not None and version is not None:
        msg = "give --alias or --version, not both"
        raise typer.BadParameter(msg, param_hint="--alias")
    if watch and version is not None:
        msg = "--watch follows an alias; drop --version (or give --alias)"
        raise typer.BadParameter(msg, param_hint="--watch")
    from cloud.cli.commands.registry import quiet_mlflow
    from cloud.deploy import resolve_targets
    from cloud.deploy.settings import load_deploy_settings
    from cloud.deploy.targets import parse_node_list
    from cloud.registry import load_registry_settings

    settings = load_deploy_settings(db_url=db, deploy_concurrency=concurrency)
    sessions = _sessions(settings.db_url, create=True)
    node_list = parse_node_list(nodes)
    registry = load_registry_settings(tracking_uri=tracking_uri)
    quiet_mlflow()
    rollout = _Rollout(name, settings, sessions, registry, canary)
    if not watch:
        targets = resolve_targets(nodes=node_list, line=line, session_factory=sessions)
        rollout.run(targets, version=version, alias=None if version else alias or "production")
        return
    _watch(
        rollout,
        alias or "production",
        interval,
        lambda: resolve_targets(nodes=node_list, line=line, session_factory=sessions),
    )


class _Rollout:
    """One registered model, rolled out from the registry to nodes, recorded in the database."""

    def __init__(
        self,
        name: str,
        settings: DeploySettings,
        sessions: sessionmaker[Session],
        registry: RegistrySettings,
        canary: int,
    ) -> None:
        self.name, self.settings, self.sessions = name, settings, sessions
        self.registry, self.canary = registry, canary

    def run(self, targets: list[Target], *, version: int | None, alias: str | None) -> None:
        """Download, pack and roll out one version; DeployError names the nodes that failed."""
        from cloud.deploy import TargetOutcome, pack_bundle, roll_out
        from cloud.deploy.record import DeploymentRecorder
        from cloud.errors import DeployError
        from cloud.registry import download_version

        def show(outcome: TargetOutcome) -> None:
            sent = f"{outcome.bytes_sent / 1e6:.2f} MB"
            typer.echo(
                f"  {outcome.target.name:<22} {outcome.state:<10} {sent:>9}  {outcome.detail}"
            )

        with tempfile.TemporaryDirectory(prefix="linewatch-deploy-") as workdir:
            bundle_dir = download_version(
                self.name,
                dest=Path(workdir) / "bundle",
                settings=self.registry,
                version=version,
                alias=alias,
            )
            packed = pack_bundle(bundle_dir, Path(workdir) / "bundle.tar")
            typer.echo(
                f"deploying {packed.label} ({packed.size / 1e6:.2f} MB) to {len(targets)} nodes"
            )
            report = roll_out(
                packed,
                targets,
                canary=self.canary,
                concurrency=self.settings.deploy_concurrency,
                options=self.settings.client_options(),
                recorder=DeploymentRecorder(self.sessions, requested_by="cli"),
                on_outcome=show,
            )
        typer.echo(f"deployment {report.deployment_id}: {report.state} in {report.seconds:.1f}s")
        if report.failed:
            names = ", ".join(item.target.name for item in report.failed)
            msg = (
                f"deploy of {packed.label}: {len(report.failed)} of {len(targets)} nodes not "
                f"updated ({names}); they keep their old model"
            )
            raise DeployError(msg)


def _watch(
    rollout: _Rollout, alias: str, interval: float, targets: Callable[[], list[Target]]
) -> None:
    """Roll out whatever ``alias`` names now, then again each time it moves, until stopped.

    A failed rollout or an unreachable registry is reported and the watch goes on;
    SIGINT or SIGTERM ends it between checks.
    """
    from cloud.errors import LinewatchError
    from cloud.registry import resolve_version

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    deployed: int | None = None
    typer.echo(f"watching {rollout.name}@{alias} every {interval:g}s (Ctrl-C stops)")
    while not stop.is_set():
        try:
            current = resolve_version(rollout.name, settings=rollout.registry, alias=alias)
            if current != deployed:
                typer.echo(f"{rollout.name}@{alias} is version {current}")
                deployed = current  # tried once per move: a failed node keeps its model
                rollout.run(targets(), version=current, alias=None)
        except LinewatchError as exc:  # reported; the next check tries again
            typer.echo(f"error: {exc}; still watching", err=True)
        stop.wait(interval)
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
) -> None:
    """Send nodes back to the bundle they ran before the current one (recorded per node)."""
    from cloud.deploy import NodeClient, resolve_targets
    from cloud.deploy.record import DeploymentRecorder
    from cloud.deploy.settings import load_deploy_settings
    from cloud.deploy.targets import parse_node_list
    from cloud.errors import DeployError

    settings = load_deploy_settings(db_url=db)
    sessions = _sessions(settings.db_url, create=True)
    targets = resolve_targets(nodes=parse_node_list(node), line=line, session_factory=sessions)
    recorder = DeploymentRecorder(sessions, requested_by="cli")
    record_id = recorder.start_rollback(targets)
    failed: list[str] = []
    for target in targets:
        recorder.update(target, "activating")
        try:
            with NodeClient(target.address, settings.client_options()) as client:
                switched = client.rollback()
        except DeployError as exc:
            failed.append(target.name)
            recorder.update(target, "failed", outcome=str(exc))
            typer.echo(f"  {target.name:<22} failed     {exc}")
            continue
        outcome = f"rolled back to {switched.active} (was {switched.previous})"
        recorder.update(target, "succeeded", outcome=outcome)
        name, _, version = switched.active.rpartition(":")
        if name:
            recorder.node_runs(target, name, version)
        typer.echo(f"  {target.name:<22} {outcome}")
    recorder.finish("failed" if failed else "succeeded")
    typer.echo(f"rollback {record_id}: see `linewatch deploy status --id {record_id}`")
    if failed:
        msg = (
            f"rollback: {len(failed)} of {len(targets)} nodes not rolled back ({', '.join(failed)})"
        )
        raise DeployError(msg)

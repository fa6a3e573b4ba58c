"""linewatch retrain: learn from reviewed samples, gate against production, register."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cloud.cli.app import app
from cloud.cli.commands.registry import quiet_mlflow
from cloud.cli.progress import staged_progress

if TYPE_CHECKING:
    from cloud.retrain import RetrainOutcome

_TRACKING_HELP = "MLflow tracking URI (default: MLFLOW_TRACKING_URI, else var/mlflow/mlflow.db)."


def _show(outcome: RetrainOutcome, json_path: Path | None) -> None:
    typer.echo(
        f"{outcome.name} version {outcome.candidate_version} registered ({outcome.fit_method} "
        f"fit {outcome.fit_s:.1f}s, {outcome.reviewed_normals_used} reviewed normals): "
        f"gate {outcome.gate.upper()}"
    )
    typer.echo(
        f"  false alarms {outcome.false_alarms_before} -> {outcome.false_alarms_after}, "
        f"threshold {outcome.threshold_before:.3f} -> {outcome.threshold_after:.3f}, "
        f"new misses {len(outcome.new_misses)}"
    )
    for reason in outcome.reasons:
        typer.echo(f"  not promoted: {reason}")
    for skipped in outcome.skipped:
        typer.echo(f"  skipped {skipped}")
    if outcome.promoted:
        typer.echo(f"  {outcome.name}@production is now version {outcome.candidate_version}")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(outcome.model_dump(mode="json"), indent=2) + "\n")


@app.command()
def retrain(
    name: Annotated[str, typer.Option("--name", help="Registered model to retrain, e.g. line3.")],
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="Dataset (MVTec layout) production learnt from; default: its record."
        ),
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", help="Database URL. [env LINEWATCH_DB_URL]")
    ] = None,
    store: Annotated[
        Path | None, typer.Option("--store", help="Sample image store. [env LINEWATCH_STORE_DIR]")
    ] = None,
    line: Annotated[
        list[str] | None, typer.Option("--line", help="Use reviews from this line only (repeat).")
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the report as JSON here.")
    ] = None,
    promote: Annotated[
        bool, typer.Option("--promote", help="Make a candidate that passes the gate production.")
    ] = False,
    incremental: Annotated[
        bool,
        typer.Option(
            "--incremental",
            help="Grow production's memory banks instead of fitting every image again "
            "(faster; calibrates on fewer images).",
        ),
    ] = False,
    recall: Annotated[
        float | None,
        typer.Option("--recall", help="Share of reviewed defects the threshold must catch."),
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="Lock and watch state (var/retrain).")
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Keep running; retrain when due (Ctrl-C stops).")
    ] = False,
    every: Annotated[
        str | None, typer.Option("--every", help="--watch: retrain this often, e.g. 24h.")
    ] = None,
    min_new: Annotated[
        int | None,
        typer.Option("--min-new", min=1, help="--watch: retrain once this many new reviews."),
    ] = None,
    check_every: Annotated[
        str | None, typer.Option("--check-every", help="--watch: how often to look, e.g. 1m.")
    ] = None,
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help=_TRACKING_HELP)] = None,
    signing_key: Annotated[
        Path | None, typer.Option("--signing-key", help="Ed25519 key that signs the candidate.")
    ] = None,
) -> None:
    """Retrain from reviewed samples; register the candidate with its gate report.

    Exit 0 when a candidate was registered, whether its gate passed or failed.
    """
    from cloud.errors import ConfigError
    from cloud.registry import load_registry_settings
    from cloud.retrain import FitMethod, RetrainRequest, run_retrain
    from cloud.retrain.settings import load_retrain_settings
    from cloud.retrain.watch import parse_duration, watch_retrain

    settings = load_retrain_settings(db_url=db, store_dir=store, state_dir=state_dir, recall=recall)
    registry_settings = load_registry_settings(tracking_uri=tracking_uri, signing_key=signing_key)
    quiet_mlflow()
    request = RetrainRequest(
        name=name,
        db_url=settings.db_url,
        store_dir=settings.store_dir,
        state_dir=settings.state_dir,
        data=data,
        lines=tuple(line or ()),
        promote=promote,
        method=FitMethod.INCREMENTAL if incremental else FitMethod.FULL,
        recall=settings.recall,
    )
    if not watch:
        if every or min_new:
            msg = "retrain: --every and --min-new need --watch"
            raise ConfigError(msg)
        with staged_progress() as report:
            outcome = run_retrain(request, registry_settings, report)
        _show(outcome, json_path)
        return
    if not every and not min_new:
        msg = "retrain --watch: say when, with --every 24h and/or --min-new 50"
        raise ConfigError(msg)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    typer.echo(f"watching reviews of {name} (Ctrl-C stops)")
    watch_retrain(
        request,
        registry_settings,
        stop,
        every_s=parse_duration(every) if every else None,
        min_new=min_new,
        check_interval_s=parse_duration(check_every) if check_every else settings.check_interval_s,
        on_outcome=lambda outcome: _show(outcome, json_path),
        on_error=lambda exc: typer.echo(f"error: {exc}; still watching", err=True),
    )
    typer.echo("watch stopped")

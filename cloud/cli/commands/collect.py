"""``linewatch collect``, ``alerts list``, ``samples list|review``, ``db upgrade|rejected``.

The database URL defaults to ``sqlite:///var/linewatch.db`` (a ``var/`` folder
under the current directory, made on first use) or ``$LINEWATCH_DB_URL``; images
go to ``var/samples`` or ``$LINEWATCH_STORE_DIR``.
"""

from __future__ import annotations

import getpass
import json
import re
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.orm import Session

from cloud.cli.app import app
from cloud.collector.collector import Collector, CollectorStats
from cloud.collector.metrics import serve_collector_metrics
from cloud.collector.settings import CollectorSettings
from cloud.collector.store import BlobStore
from cloud.db.migrate import require_migrated, upgrade
from cloud.db.queries import list_alerts, list_rejected, list_samples
from cloud.db.session import make_engine, make_session_factory
from cloud.errors import ConfigError
from cloud.review import Label, record_review

_T = TypeVar("_T")

alerts_app = typer.Typer(help="The operators' alert feed.", no_args_is_help=True)
samples_app = typer.Typer(help="Uncertain and abnormal samples for review.", no_args_is_help=True)
db_app = typer.Typer(help="The Linewatch database.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")
app.add_typer(samples_app, name="samples")
app.add_typer(db_app, name="db")

_PROGRESS_EVERY_S = 10.0
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

DB_HELP = "Database URL (sqlite:///… or postgresql://…). [env LINEWATCH_DB_URL]"


class SampleVerdict(StrEnum):
    """Verdicts a sample can carry."""

    UNCERTAIN = "uncertain"
    ABNORMAL = "abnormal"


def _settings(**flags: object) -> CollectorSettings:
    try:
        return CollectorSettings(**{k: v for k, v in flags.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        msg = f"setting {field}: {first['msg']} (got {first.get('input')!r})"
        raise ConfigError(msg) from exc


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    relative = _RELATIVE.match(text.strip())
    if relative:
        amount, unit = float(relative.group(1)), _UNITS[relative.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: amount})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        msg = f"--since {text!r}: expected an ISO 8601 time (2026-01-05T08:00) or an age (2h)"
        raise typer.BadParameter(msg) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _print_stats(prefix: str, stats: CollectorStats) -> None:
    typer.echo(
        f"{prefix} alerts={stats.alerts} samples={stats.samples} statuses={stats.statuses} "
        f"duplicates={stats.duplicates} rejected={stats.rejected} malformed={stats.malformed}",
        err=True,
    )


@app.command()
def collect(
    mqtt: Annotated[
        str | None, typer.Option("--mqtt", help="Broker URL. [env LINEWATCH_MQTT_URL]")
    ] = None,
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
    store: Annotated[
        Path | None, typer.Option("--store", help="Image store folder. [env LINEWATCH_STORE_DIR]")
    ] = None,
    mqtt_user: Annotated[str | None, typer.Option("--mqtt-user", help="Broker user name.")] = None,
    mqtt_password: Annotated[
        str | None, typer.Option("--mqtt-password", help="Broker password.")
    ] = None,
    mqtt_tls_ca: Annotated[
        Path | None, typer.Option("--mqtt-tls-ca", help="CA file; implies TLS.")
    ] = None,
    collector_id: Annotated[
        str | None,
        typer.Option(
            "--id", help="MQTT client id; keep it across restarts so the broker keeps the queue."
        ),
    ] = None,
    metrics: Annotated[
        str | None,
        typer.Option(
            "--metrics",
            help="Serve Prometheus metrics at [HOST]:PORT, e.g. :9200. "
            "[env LINEWATCH_METRICS_ADDRESS]",
        ),
    ] = None,
) -> None:
    """Store every alert, sample and node status from the broker until interrupted."""
    settings = _settings(
        mqtt_url=mqtt,
        db_url=db,
        store_dir=store,
        mqtt_user=mqtt_user,
        mqtt_password=mqtt_password,
        mqtt_tls_ca=mqtt_tls_ca,
        collector_id=collector_id,
        metrics_address=metrics,
    )
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    collector = Collector(settings, make_session_factory(engine), BlobStore(settings.store_dir))
    if settings.metrics_address is not None:
        port = serve_collector_metrics(collector.metrics, settings.metrics_address)
        typer.echo(f"metrics at :{port}/metrics", err=True)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    collector.start()
    broker = settings.broker.display
    typer.echo(f"collecting from {broker} into {engine.url!r}", err=True)
    try:
        while not stop.wait(_PROGRESS_EVERY_S):
            _print_stats("collected", collector.stats)
    finally:
        collector.stop()
        engine.dispose()
    _print_stats("stopped;", collector.stats)


def _read(db: str | None, query: Callable[[Session], _T]) -> _T:
    """Run one read-only query on the migrated database named by ``--db`` or the settings."""
    url = require_migrated(_settings(db_url=db).db_url)
    engine = make_engine(url, create_dirs=False)
    try:
        with make_session_factory(engine)() as session:
            return query(session)
    finally:
        engine.dispose()


@alerts_app.command("list")
def alerts_list(
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
    node: Annotated[str | None, typer.Option("--node", help="Only this node.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="ISO 8601 time or an age: 30m, 2h, 1d.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="At most this many, newest first.")
    ] = 100,
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON list of objects with their id.")
    ] = False,
) -> None:
    """List alerts, newest first."""
    alerts = _read(
        db, lambda session: list_alerts(session, node=node, since=_since(since), limit=limit)
    )
    if as_json:
        typer.echo(json.dumps([a.to_json() for a in alerts], indent=2))
        return
    for a in alerts:
        typer.echo(
            f"{a.captured_at:%Y-%m-%d %H:%M:%S}  {a.site}/{a.line}/{a.node}  "
            f"score={a.image_score:.2f}  model={a.model_name}:{a.model_version}  {a.id}"
        )
    typer.echo(f"{len(alerts)} alert(s)", err=True)


@samples_app.command("list")
def samples_list(
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
    verdict: Annotated[
        SampleVerdict | None, typer.Option("--verdict", help="Only this verdict.")
    ] = None,
    reviewed: Annotated[
        bool | None, typer.Option("--reviewed/--unreviewed", help="Review state.")
    ] = None,
    node: Annotated[str | None, typer.Option("--node", help="Only this node.")] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="At most this many, newest first.")
    ] = 100,
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON list of objects with their id.")
    ] = False,
) -> None:
    """List samples, newest first."""
    samples = _read(
        db,
        lambda session: list_samples(
            session,
            verdict=verdict.value if verdict else None,
            reviewed=reviewed,
            node=node,
            limit=limit,
        ),
    )
    if as_json:
        rows = [
            {**s.to_json(), "review": s.label if s.review_state == "reviewed" else None}
            for s in samples
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    for s in samples:
        typer.echo(
            f"{s.captured_at:%Y-%m-%d %H:%M:%S}  {s.site}/{s.line}/{s.node}  {s.verdict:<9}  "
            f"score={s.image_score:.2f}  {s.review_state:<8}  {s.image_path}  {s.id}"
        )
    typer.echo(f"{len(samples)} sample(s)", err=True)


@samples_app.command("review")
def samples_review(
    sample_id: Annotated[str, typer.Argument(metavar="ID", help="The sample's id.")],
    label: Annotated[Label, typer.Option("--label", help="What the sample shows.")],
    defect_type: Annotated[
        str | None, typer.Option("--defect-type", help="With --label defect: crack, scratch…")
    ] = None,
    note: Annotated[str, typer.Option("--note", help="Free text kept with the review.")] = "",
    reviewer: Annotated[
        str | None, typer.Option("--reviewer", help="Who reviews; default cli:<login name>.")
    ] = None,
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
) -> None:
    """Record a review; a second review of a sample is kept in its trail, not overwritten."""
    url = require_migrated(_settings(db_url=db).db_url)
    engine = make_engine(url, create_dirs=False)
    try:
        with make_session_factory(engine).begin() as session:
            review = record_review(
                session,
                sample_id,
                label,
                reviewer or f"cli:{getpass.getuser()}",
                defect_type=defect_type,
                note=note,
            )
    finally:
        engine.dispose()
    kind = f" ({review.defect_type})" if review.defect_type else ""
    typer.echo(f"sample {sample_id}: {review.label}{kind} by {review.reviewer}")


@db_app.command("upgrade")
def db_upgrade(db: str = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """Create or migrate the database to the newest schema (Alembic)."""
    url = _settings(db_url=db).db_url
    revision = upgrade(url)
    typer.echo(f"database at revision {revision}")


@db_app.command("rejected")
def db_rejected(
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="At most this many, newest first.")
    ] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list of objects.")] = False,
) -> None:
    """List messages the collector set aside (dead letters), newest first, with the reason."""
    rejected = _read(db, lambda session: list_rejected(session, limit=limit))
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in rejected], indent=2))
        return
    for r in rejected:
        typer.echo(
            f"{r.received_at:%Y-%m-%d %H:%M:%S}  {r.topic}  {r.payload_size_bytes} B  "
            f"{r.collector_id}  {r.reason}"
        )
    typer.echo(f"{len(rejected)} rejected message(s)", err=True)

"""linewatch register / promote: put a bundle in the MLflow registry and choose what ships."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from cloud.cli.app import app, state

_TRACKING_HELP = "MLflow tracking URI (default: MLFLOW_TRACKING_URI, else var/mlflow/mlflow.db)."


def quiet_mlflow() -> None:
    """MLflow logs its own INFO lines (database set-up); keep them for --verbose/--debug."""
    if not state["debug"] and logging.getLogger().level > logging.INFO:
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)


@app.command()
def register(
    bundle: Annotated[Path, typer.Option("--bundle", help="Bundle directory or .tar to register.")],
    name: Annotated[
        str, typer.Option("--name", help="Registered model name, e.g. the line: line3.")
    ],
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help=_TRACKING_HELP)] = None,
    signing_key: Annotated[
        Path | None,
        typer.Option(
            "--signing-key",
            help="Ed25519 key that signs the bundle (default: keys/signing.key if it exists).",
        ),
    ] = None,
) -> None:
    """Create a new MLflow model version carrying the bundle, stamped with that version."""
    from cloud.registry import load_registry_settings, register_bundle, signing_key_path

    settings = load_registry_settings(tracking_uri=tracking_uri, signing_key=signing_key)
    quiet_mlflow()
    key = signing_key_path(settings)
    registered = register_bundle(bundle, name, settings=settings)
    signed = f"signed with {key}" if key else "UNSIGNED (no keys/signing.key)"
    typer.echo(f"registered {registered.name} version {registered.version}, {signed}")
    typer.echo(
        f"to ship it: linewatch promote --name {registered.name} --version {registered.version}"
    )


@app.command()
def promote(
    name: Annotated[str, typer.Option("--name", help="Registered model name.")],
    version: Annotated[
        int, typer.Option("--version", min=1, help="Version to point the alias at.")
    ],
    alias: Annotated[str, typer.Option("--alias", help="Alias the deployer follows.")] = (
        "production"
    ),
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help=_TRACKING_HELP)] = None,
) -> None:
    """Point an alias (default: production) at a model version."""
    from cloud.registry import load_registry_settings
    from cloud.registry import promote as promote_version

    settings = load_registry_settings(tracking_uri=tracking_uri)
    quiet_mlflow()
    promote_version(name, version, settings=settings, alias=alias)
    typer.echo(f"{name}@{alias} is now version {version}")

"""linewatch train: fit a detector on good images, evaluate it, log it to MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cloud.cli.app import app
from cloud.cli.commands.registry import quiet_mlflow
from cloud.cli.progress import staged_progress
from cloud.redact import redact_url
from cloud.train_settings import (  # no torch: --help stays fast
    DEFAULT_PRESET,
    PRESETS,
    DensityHeadMode,
    PresetName,
    TrainSettings,
)

_TRACKING_HELP = "MLflow tracking URI (default: MLFLOW_TRACKING_URI, else var/mlflow/mlflow.db)."


def _default(setting: str) -> Any:
    """The option's default is the setting's, so the CLI and the trainer cannot drift."""
    return TrainSettings.model_fields[setting].default


def _by_preset(setting: str) -> str:
    """Help text naming each preset's value of an option the presets set."""
    values = ", ".join(f"{name} {PRESETS[name][setting]}" for name in PRESETS)
    return f" Default: the preset's ({values})."


@app.command()
def train(
    data: Annotated[Path, typer.Option("--data", help="Dataset folder in the MVTec AD layout.")],
    out: Annotated[Path, typer.Option("--out", help="Bundle directory to write.")],
    name: Annotated[str | None, typer.Option(help="Model name (default: data folder).")] = None,
    register: Annotated[bool, typer.Option(help="Also register a new MLflow version.")] = False,
    preset: Annotated[
        PresetName,
        typer.Option(
            help="fast: <= 10 ms a 256 px frame on 2 CPU cores; accurate: a 512 px input "
            "budget for small defects on large images, up to 40 ms. Options below override it."
        ),
    ] = DEFAULT_PRESET,
    input_size: Annotated[
        int | None,
        typer.Option(
            help="Model input: about SIZE x SIZE pixels, shaped like the images."
            + _by_preset("input_size")
        ),
    ] = None,
    keep_aspect_ratio: Annotated[
        bool,
        typer.Option(
            "--keep-aspect-ratio/--square-input",
            help="Shape the input like the training images (same pixel count), or squash "
            "every image into a SIZE x SIZE square.",
        ),
    ] = _default("keep_aspect_ratio"),
    bank_sizes: Annotated[
        tuple[int, int] | None,
        typer.Option(
            help="Memory bank entries: fine texture level, part level (speed)."
            + _by_preset("bank_sizes")
        ),
    ] = None,
    density_head: Annotated[
        DensityHeadMode | None,
        typer.Option(
            help="A Gaussian of normal patches beside the memory bank: mean (averaged with "
            "the bank's distance), max, alone (no bank search), or off."
            + _by_preset("density_head")
        ),
    ] = None,
    colour_contrast_weight: Annotated[
        float,
        typer.Option(
            "--colour-contrast",
            help="Weight of each patch's colour against its surroundings in the search "
            "(faint stains and spots); 0 searches on texture alone.",
        ),
    ] = _default("colour_contrast_weight"),
    target_false_alarm_rate: Annotated[
        float, typer.Option(help="Share of good parts allowed to alarm; sets the threshold.")
    ] = _default("target_false_alarm_rate"),
    band_margin: Annotated[
        float, typer.Option(help="Uncertain band below the threshold, in std of good parts.")
    ] = _default("band_margin"),
    seed: Annotated[int, typer.Option(help="Seed of the split and the coreset.")] = _default(
        "seed"
    ),
    skip_unreadable: Annotated[
        bool, typer.Option(help="Skip images that do not decode instead of stopping.")
    ] = _default("skip_unreadable"),
    tracking_uri: Annotated[str | None, typer.Option(help=_TRACKING_HELP)] = None,
    signing_key: Annotated[
        Path | None, typer.Option(help="Ed25519 key that signs a registered bundle.")
    ] = None,
) -> None:
    """Learn what normal looks like from DATA/train/good and write a ModelBundle.

    When DATA/test exists the bundle is evaluated on it and the figures go into
    the manifest; every run is logged to MLflow with its parameters and data digest.
    """
    from pydantic import ValidationError

    from cloud.errors import TrainingError
    from cloud.train import train_bundle  # torch loads only for this command
    from cloud.training_run import record_training

    try:
        # Only options given on the command line override the preset.
        by_preset: dict[str, Any] = {
            "input_size": input_size,
            "bank_sizes": bank_sizes,
            "density_head": density_head,
        }
        settings = TrainSettings.model_validate(
            {key: value for key, value in by_preset.items() if value is not None}
            | {
                "preset": preset,
                "keep_aspect_ratio": keep_aspect_ratio,
                "colour_contrast_weight": colour_contrast_weight,
                "target_false_alarm_rate": target_false_alarm_rate,
                "band_margin": band_margin,
                "seed": seed,
                "skip_unreadable": skip_unreadable,
            }
        )
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "options"
        msg = f"train {where}: {problem['msg']}; see linewatch train --help"
        raise TrainingError(msg) from exc
    with staged_progress() as report:
        bundle = train_bundle(data, out, name=name, settings=settings, progress=report)
        quiet_mlflow()
        recorded = record_training(
            bundle,
            data,
            settings,
            tracking_uri=tracking_uri,
            signing_key=signing_key,
            register=register,
            progress=report,
        )
    decision = bundle.manifest.decision
    typer.echo(
        f"bundle {out}: model {bundle.manifest.name}, memory bank "
        f"{bundle.manifest.detector.memory_bank_size} patches, threshold "
        f"{decision.threshold:.2f}, uncertain from {decision.uncertain_low:.2f}"
    )
    for key, value in recorded.metrics.items():
        typer.echo(f"  {key}: {value:.4f}")
    typer.echo(f"MLflow run {recorded.run_id} ({redact_url(recorded.tracking_uri)})")
    if recorded.version is not None:
        typer.echo(f"registered {bundle.manifest.name} version {recorded.version}")

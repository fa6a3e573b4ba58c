"""linewatch calibrate: lower a bundle's threshold to catch a share of labelled defects."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cloud.cli.app import app
from cloud.cli.progress import staged_progress

if TYPE_CHECKING:
    from cloud.calibrate import CalibrationOutcome


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _show(outcome: CalibrationOutcome, out: Path) -> None:
    found, before, after = outcome.found, outcome.before, outcome.after
    for line in outcome.skipped:
        typer.echo(f"skipped {line}", err=True)
    rows = [
        ("", "before", "after", ""),
        ("threshold", f"{before.threshold:.3f}", f"{after.threshold:.3f}", ""),
        (
            "recall",
            _rate(before.recall),
            _rate(after.recall),
            f"{found.n_defects} defects, target {found.target_recall:g}",
        ),
        (
            "false alarms",
            _rate(before.false_alarm_rate),
            _rate(after.false_alarm_rate),
            f"{outcome.n_good} good test images",
        ),
    ]
    for label, first, second, note in rows:
        typer.echo(f"{label:<13}{first:>8}  {second:>8}  {note}".rstrip())
    limited = (
        "the defects (recall target)"
        if found.limited_by == "recall"
        else "the good-image quantile (the ceiling: it already catches the target)"
    )
    typer.echo(f"threshold set by {limited}")
    signed = (
        f"signed with key {outcome.signing_key_id}"
        if outcome.signing_key_id
        else "UNSIGNED like its input; `linewatch register` signs it"
    )
    typer.echo(f"bundle {out}: {outcome.bundle.label}, {signed}")


@app.command()
def calibrate(
    bundle: Annotated[
        Path, typer.Option("--bundle", help="Bundle directory or .tar to calibrate.")
    ],
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="Dataset in the MVTec AD layout with labelled defects in test/<defect>/ "
            "(test/good/ measures false alarms).",
        ),
    ],
    recall: Annotated[
        float,
        typer.Option(
            "--recall", help="Share of the defects the threshold must catch, in (0, 1], e.g. 0.95."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Bundle directory to write. Required, because no other command changes a "
            "bundle in place; give the --bundle folder itself to rewrite it.",
        ),
    ],
    signing_key: Annotated[
        Path | None,
        typer.Option(
            "--signing-key",
            help="Ed25519 key that checks the bundle's signature and signs the calibrated "
            "copy (default: keys/signing.key if it exists).",
        ),
    ] = None,
    allow_unsigned: Annotated[
        bool,
        typer.Option(
            "--allow-unsigned",
            help="Calibrate a bundle without a signature (straight from `linewatch train`); "
            "the copy stays unsigned.",
        ),
    ] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Images per ONNX Runtime call.")
    ] = 8,
) -> None:
    """Lower the threshold until RECALL of DATA's labelled defects is caught.

    The bundle's graph scores the defects with ONNX Runtime, as a node would. The
    good-image quantile threshold from training stays the ceiling: the threshold
    only goes down, so a calibrated model never misses more than the quantile one.
    The new decision policy and a record of how it was chosen go into the manifest.
    """
    # Imported here so that `linewatch --help` stays fast.
    from cloud.calibrate import calibrate_bundle
    from cloud.calibration import check_recall
    from cloud.signing import DEFAULT_SIGNING_KEY, load_private_key

    check_recall(recall)
    key_path = signing_key or (DEFAULT_SIGNING_KEY if DEFAULT_SIGNING_KEY.is_file() else None)
    key = load_private_key(key_path) if key_path is not None else None
    with staged_progress() as report:
        outcome = calibrate_bundle(
            bundle,
            data,
            out,
            recall=recall,
            signing_key=key,
            allow_unsigned=allow_unsigned,
            batch_size=batch_size,
            progress=report,
        )
    _show(outcome, out)

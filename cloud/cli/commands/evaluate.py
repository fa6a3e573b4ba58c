"""linewatch evaluate: score a bundle on a labelled test set, write report.json and pictures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cloud.cli.app import app
from cloud.cli.progress import staged_progress


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


@app.command()
def evaluate(
    bundle: Annotated[Path, typer.Option("--bundle", help="Bundle directory or .tar to evaluate.")],
    data: Annotated[
        Path,
        typer.Option("--data", help="Dataset in the MVTec AD layout (test/good, test/<defect>)."),
    ],
    json_path: Annotated[Path, typer.Option("--json", help="Where to write report.json.")],
    report_dir: Annotated[
        Path | None,
        typer.Option("--report-dir", help="Also write pictures: ROC, score histogram, gallery."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Images per ONNX Runtime call.")
    ] = 8,
    gallery_size: Annotated[
        int, typer.Option("--gallery-size", min=1, help="Tiles per gallery row.")
    ] = 6,
) -> None:
    """Run the bundle over DATA/test with ONNX Runtime, as a node would, and report."""
    # Imported here so that `linewatch --help` stays fast.
    from cloud.evaluation import evaluate_bundle, write_report

    with staged_progress() as report_progress:
        outcome = evaluate_bundle(
            bundle,
            data,
            batch_size=batch_size,
            progress=lambda done, total: report_progress("scoring test images", done, total),
        )
    report = outcome.report
    write_report(report, json_path)
    pictures: list[Path] = []
    if report_dir is not None:
        from cloud.evaluation.report_pictures import write_report_pictures

        pictures = write_report_pictures(outcome, report_dir, gallery_size=gallery_size).all()
    kinds = ", ".join(f"{name} {count}" for name, count in report.counts.items())
    rows = [
        (
            "model",
            f"{report.bundle} (threshold {report.threshold:.2f}, "
            f"uncertain from {report.uncertain_low:.2f})",
        ),
        ("test images", f"{report.n_images} ({kinds})"),
        ("image AUROC", _rate(report.image_auroc)),
        ("pixel AUROC", _rate(report.pixel_auroc)),
        ("AUPRO (FPR <= 0.3)", _rate(report.aupro)),
        ("false alarms at 95% caught", _rate(report.fpr_at_95_recall)),
        ("false alarms at 100% caught", _rate(report.fpr_at_full_recall)),
        ("recall at threshold", _rate(report.recall_at_threshold)),
        ("false alarms at threshold", _rate(report.false_alarm_rate_at_threshold)),
        (
            "latency per image",
            f"median {report.latency.median_ms:.2f} ms, "
            f"p95 {report.latency.p95_ms:.2f} ms (batch {report.latency.batch_size})",
        ),
        ("report", str(json_path)),
    ]
    rows += [("picture", str(path)) for path in pictures]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        typer.echo(f"{label:<{width}}  {value}")

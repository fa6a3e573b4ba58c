"""Pictures for an evaluation: ROC curve, score histogram and a gallery of heatmaps.

The gallery shows where the model is weakest: the good images that scored
highest (the false alarms operators will see) and the defects that scored
lowest (the ones closest to slipping through). Figures are drawn on
matplotlib's Agg canvas directly, so no GUI backend or global pyplot state is
touched.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import auc, roc_curve

from cloud.evaluation.metrics import (
    GOOD,
    EvaluationReport,
    OperatingPoint,
    fpr_at_full_recall,
    operating_point,
    sanitize_scores,
)
from cloud.evaluation.runner import EvaluationOutcome, ScoredImage, infer_maps, read_mask
from edge.runtime.imaging import ImageArray

__all__ = [
    "GalleryTile",
    "ReportPictures",
    "plot_gallery",
    "plot_roc_curve",
    "plot_score_histogram",
    "write_report_pictures",
]

logger = logging.getLogger(__name__)

ROC_FILE = "roc_curve.png"
HISTOGRAM_FILE = "score_histogram.png"
GALLERY_FILE = "gallery.png"
_DPI = 110


@dataclass(frozen=True)
class ReportPictures:
    """Paths of the pictures one evaluation wrote."""

    roc_curve: Path | None
    score_histogram: Path
    gallery: Path

    def all(self) -> list[Path]:
        """Every picture written, in reading order."""
        return [path for path in (self.roc_curve, self.score_histogram, self.gallery) if path]


@dataclass(frozen=True)
class GalleryTile:
    """One gallery image: the picture at map size, its heatmap, mask and title."""

    image: ImageArray
    anomaly_map: npt.NDArray[np.float32]
    mask: npt.NDArray[np.bool_] | None
    title: str


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=_DPI)
    return path


def _rates(point: OperatingPoint) -> tuple[float, float]:
    """(false-alarm rate, recall); both exist once both classes do."""
    return float(point.false_alarm_rate or 0.0), float(point.recall or 0.0)


def plot_roc_curve(
    labels: npt.ArrayLike,
    scores: npt.ArrayLike,
    *,
    threshold: float,
    uncertain_low: float,
    path: Path,
    title: str,
) -> Path:
    """Draw the image-level ROC curve with the bundle's operating points marked.

    Raises:
        ValueError: labels without both good and defective images (no curve exists).
    """
    truth = np.asarray(labels, dtype=bool)
    if truth.all() or not truth.any():
        msg = "ROC curve: needs both good and defective images"
        raise ValueError(msg)
    values = sanitize_scores(scores)
    fpr, tpr, _ = roc_curve(truth, values)
    auroc = float(auc(fpr, tpr))
    figure = Figure(figsize=(5.6, 5.2), layout="constrained")
    axes = figure.add_subplot()
    axes.plot(fpr, tpr, color="tab:blue", lw=2, label=f"ROC (AUROC {auroc:.3f})")
    axes.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="chance")
    point = _rates(operating_point(truth, values, threshold))
    band = _rates(operating_point(truth, values, uncertain_low))
    axes.plot(
        point[0],
        point[1],
        "o",
        color="tab:red",
        ms=9,
        label=f"threshold {threshold:.2f}: recall {point[1]:.2f}, false alarms {point[0]:.2f}",
    )
    axes.plot(
        band[0],
        band[1],
        "s",
        color="tab:orange",
        ms=7,
        label=f"band low edge {uncertain_low:.2f}: recall {band[1]:.2f}, "
        f"flagged good {band[0]:.2f}",
    )
    full = fpr_at_full_recall(truth, values)
    if full is not None:
        axes.plot(
            full[0], 1.0, "^", color="tab:green", ms=8, label=f"full recall: FPR {full[0]:.2f}"
        )
    axes.set(
        xlim=(-0.02, 1.02),
        ylim=(-0.02, 1.02),
        xlabel="false-alarm rate (good images flagged)",
        ylabel="recall (defective images flagged)",
        title=title,
    )
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    return _save(figure, path)


def plot_score_histogram(
    defect_types: Sequence[str],
    scores: npt.ArrayLike,
    *,
    threshold: float,
    uncertain_low: float,
    path: Path,
    title: str,
) -> Path:
    """Draw one score histogram per class with the threshold and the uncertain band."""
    values = sanitize_scores(scores)
    types = np.asarray(defect_types, dtype=object)
    classes = ([GOOD] if GOOD in set(defect_types) else []) + sorted(set(defect_types) - {GOOD})
    low = min(float(values.min()), uncertain_low)
    high = max(float(values.max()), threshold)
    span = max(high - low, 1e-6)
    edges = np.linspace(low - 0.05 * span, high + 0.05 * span, 41)
    figure = Figure(figsize=(7.0, 4.2), layout="constrained")
    axes = figure.add_subplot()
    axes.axvspan(uncertain_low, threshold, color="gold", alpha=0.25, label="uncertain band")
    for name in classes:
        axes.hist(
            values[types == name],
            bins=edges.tolist(),
            histtype="stepfilled",
            alpha=0.55,
            edgecolor="black",
            lw=0.6,
            color="tab:green" if name == GOOD else None,
            label=f"{name} ({int((types == name).sum())})",
        )
    axes.axvline(threshold, color="tab:red", lw=2, label=f"threshold {threshold:.2f}")
    axes.set(xlabel="image score (calibrated)", ylabel="images", title=title)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="test type")
    return _save(figure, path)


def _draw_tile(axes: Axes, tile: GalleryTile, norm: Normalize) -> AxesImage:
    axes.imshow(cv2.cvtColor(tile.image, cv2.COLOR_BGR2RGB))
    heat = axes.imshow(tile.anomaly_map, cmap="jet", norm=norm, alpha=0.45)
    if tile.mask is not None and tile.mask.any():
        axes.contour(tile.mask.astype(np.float32), levels=[0.5], colors="white", linewidths=1.5)
    axes.set_title(tile.title, fontsize=8)
    axes.set_xticks([])
    axes.set_yticks([])
    return heat


def plot_gallery(
    rows: Sequence[tuple[str, Sequence[GalleryTile]]],
    *,
    path: Path,
    title: str,
    threshold: float,
) -> Path:
    """Draw rows of heatmap overlays on one shared colour scale.

    Args:
        rows: (row label, tiles) pairs; empty rows are left out.
        path: where to write the PNG.
        title: the figure's title.
        threshold: marked on the colour bar, so a reader sees which colours are abnormal.
    """
    kept = [(label, tiles) for label, tiles in rows if tiles]
    columns = max((len(tiles) for _, tiles in kept), default=1)
    every_map = [tile.anomaly_map for _, tiles in kept for tile in tiles]
    low = min((float(np.nanmin(m)) for m in every_map), default=0.0)
    high = max([float(np.nanmax(m)) for m in every_map] + [threshold])
    norm = Normalize(vmin=low, vmax=max(high, low + 1e-6))
    figure = Figure(
        figsize=(2.3 * columns + 1.2, 2.7 * max(len(kept), 1) + 0.4), layout="constrained"
    )
    figure.suptitle(title, fontsize=11)
    subfigures = figure.subfigures(max(len(kept), 1), 1, squeeze=False)[:, 0]
    for subfigure, (label, tiles) in zip(subfigures, kept, strict=False):
        subfigure.suptitle(label, fontsize=10, x=0.02, ha="left")
        axes_row = subfigure.subplots(1, columns, squeeze=False)[0]
        heat = None
        for axes, tile in zip(axes_row, tiles, strict=False):
            heat = _draw_tile(axes, tile, norm)
        for axes in axes_row[len(tiles) :]:
            axes.set_axis_off()
        # One bar per row, all on the same scale; the black line is the threshold.
        bar = subfigure.colorbar(heat, ax=list(axes_row), shrink=0.85, label="anomaly score")
        bar.ax.axhline(threshold, color="black", lw=2)
    if not kept:
        figure.text(0.5, 0.5, "no test images", ha="center")
    return _save(figure, path)


def _tiles(outcome: EvaluationOutcome, chosen: Sequence[ScoredImage]) -> list[GalleryTile]:
    if not chosen:
        return []
    images, maps = infer_maps(outcome.engine, [entry.item.path for entry in chosen])
    tiles = []
    for entry, image, anomaly_map in zip(chosen, images, maps, strict=True):
        mask = None
        if entry.item.mask_path is not None:
            height, width = anomaly_map.shape
            raw = read_mask(entry.item.mask_path)
            mask = cv2.resize(raw, (width, height), interpolation=cv2.INTER_NEAREST) > 0
        title = f"{entry.item.path.name}\n{entry.item.defect_type} · score {entry.image_score:.2f}"
        tiles.append(GalleryTile(image=image, anomaly_map=anomaly_map, mask=mask, title=title))
    return tiles


def write_report_pictures(
    outcome: EvaluationOutcome, report_dir: Path, *, gallery_size: int = 6
) -> ReportPictures:
    """Write the ROC curve, the score histogram and the gallery into ``report_dir``.

    The ROC curve needs good and defective images; without both it is skipped
    (``roc_curve`` is None) and the histogram still shows the scores.
    """
    report: EvaluationReport = outcome.report
    labels, scores = outcome.labels, outcome.scores
    types = [entry.item.defect_type for entry in outcome.scored]
    policy = outcome.bundle.manifest.decision
    roc_path = None
    if labels.any() and not labels.all():
        roc_path = plot_roc_curve(
            labels,
            scores,
            threshold=policy.threshold,
            uncertain_low=policy.uncertain_low,
            path=report_dir / ROC_FILE,
            title=f"ROC, {report.bundle} on {Path(report.data_root).name}",
        )
    histogram = plot_score_histogram(
        types,
        scores,
        threshold=policy.threshold,
        uncertain_low=policy.uncertain_low,
        path=report_dir / HISTOGRAM_FILE,
        title=f"Image scores per type, {report.bundle}",
    )
    good = sorted((e for e in outcome.scored if not e.item.is_anomalous), key=_score_desc)
    defects = sorted((e for e in outcome.scored if e.item.is_anomalous), key=_score_asc)
    gallery = plot_gallery(
        [
            (
                "Worst-scored good images (false-alarm candidates)",
                _tiles(outcome, good[:gallery_size]),
            ),
            ("Best-hidden defects (lowest scores)", _tiles(outcome, defects[:gallery_size])),
        ],
        path=report_dir / GALLERY_FILE,
        title=(
            f"Heatmaps, {report.bundle}: threshold {policy.threshold:.2f} is the black line "
            "on the colour bar; white outline: ground-truth mask"
        ),
        threshold=policy.threshold,
    )
    logger.info("report pictures written report_dir=%s", report_dir)
    return ReportPictures(roc_curve=roc_path, score_histogram=histogram, gallery=gallery)


def _score_asc(entry: ScoredImage) -> float:
    """Sort key: a NaN score counts as the highest (NaN is abnormal by policy)."""
    return float(np.nan_to_num(entry.image_score, nan=np.inf))


def _score_desc(entry: ScoredImage) -> float:
    return -_score_asc(entry)

"""Run a bundle over a labelled test set, exactly as a node would, and fill the report.

The bundle's ONNX graph runs through the edge's own ``InferenceEngine`` (ONNX
Runtime, no torch), so the numbers describe what the line will see. Anomaly
maps are not kept: pixel AUROC samples them as they stream by, and the picture
gallery re-runs the handful of images it shows, so memory stays flat however
large the test set.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from cloud.dataset import DatasetLayout, TestImage, load_layout
from cloud.errors import ImageDecodeError
from cloud.evaluation.metrics import (
    DEFAULT_PIXELS_PER_IMAGE,
    EvaluationReport,
    ImageRecord,
    PixelSampler,
    counts_by_type,
    fpr_at_full_recall,
    fpr_at_recall,
    image_auroc,
    latency_stats,
    operating_point,
    per_defect_metrics,
)
from cloud.evaluation.region_overlap import RegionOverlap
from cloud.types import ProgressCallback
from edge.runtime.bundle import ModelBundle, load_bundle
from edge.runtime.engine import EngineOptions, InferenceEngine
from edge.runtime.imaging import ImageArray, read_image

__all__ = [
    "EvaluationOutcome",
    "ScoredImage",
    "evaluate_bundle",
    "infer_maps",
    "read_mask",
    "write_report",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoredImage:
    """A test image and the score the bundle gave it."""

    item: TestImage
    image_score: float


@dataclass(frozen=True)
class EvaluationOutcome:
    """The report plus what the pictures need: the engine and every score."""

    report: EvaluationReport
    bundle: ModelBundle
    engine: InferenceEngine
    scored: tuple[ScoredImage, ...]

    @property
    def labels(self) -> npt.NDArray[np.bool_]:
        """True for defective images, in ``scored`` order."""
        return np.array([item.item.is_anomalous for item in self.scored], dtype=bool)

    @property
    def scores(self) -> npt.NDArray[np.float64]:
        """Image scores, in ``scored`` order."""
        return np.array([item.image_score for item in self.scored], dtype=np.float64)


def read_mask(path: Path) -> npt.NDArray[np.uint8]:
    """Read a ground-truth mask as one grey channel (non-zero = defect).

    Raises:
        ImageDecodeError: a mask file OpenCV cannot read, named in the message.
    """
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        msg = f"mask {path}: not an image OpenCV can decode; fix or remove the mask"
        raise ImageDecodeError(msg)
    return np.asarray(mask, dtype=np.uint8)


def infer_maps(
    engine: InferenceEngine, paths: Sequence[Path]
) -> tuple[list[ImageArray], npt.NDArray[np.float32]]:
    """Return the images resized to the map size and their anomaly maps."""
    images = [read_image(path) for path in paths]
    result = engine.infer_images(images)
    height, width = result.anomaly_maps.shape[1:]
    shown = [
        np.asarray(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), np.uint8)
        for image in images
    ]
    return shown, result.anomaly_maps


def _batches(items: Sequence[TestImage], size: int) -> list[Sequence[TestImage]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


@dataclass
class _Collector:
    """Mutable state while batches stream through; frozen into the outcome at the end."""

    sampler: PixelSampler
    regions: RegionOverlap
    scores: list[float]
    per_image_ms: list[float]

    def add_batch(
        self,
        batch: Sequence[TestImage],
        scores: npt.NDArray[np.float32],
        maps: npt.NDArray[np.float32],
        latency_ms: float,
    ) -> None:
        self.scores.extend(float(score) for score in scores)
        self.per_image_ms.extend([latency_ms / len(batch)] * len(batch))
        for item, anomaly_map in zip(batch, maps, strict=True):
            mask = read_mask(item.mask_path) if item.mask_path is not None else None
            self.sampler.add(anomaly_map, mask, is_anomalous=item.is_anomalous)
            self.regions.add(anomaly_map, mask, is_anomalous=item.is_anomalous)


def evaluate_bundle(
    bundle_path: Path,
    data_root: Path,
    *,
    batch_size: int = 8,
    progress: ProgressCallback | None = None,
    engine_options: EngineOptions | None = None,
    pixels_per_image: int = DEFAULT_PIXELS_PER_IMAGE,
) -> EvaluationOutcome:
    """Score every test image with the bundle and compute the report.

    Args:
        bundle_path: a bundle directory or tar; verified (sha256) before use.
        data_root: a dataset in the MVTec AD layout with a ``test/`` folder.
        batch_size: images per ONNX Runtime call.
        progress: called after each batch with ``(done, total)``.
        engine_options: ONNX Runtime providers and threads; the engine's defaults if None.
        pixels_per_image: pixels each image contributes to pixel AUROC.

    Returns:
        The report and the scores the pictures need.

    Raises:
        BundleCorrupt: a bundle that fails verification.
        DatasetError: a folder not in the MVTec AD layout or without test images.
        ImageDecodeError: a test image or mask that cannot be read.
    """
    bundle = load_bundle(bundle_path)
    layout = load_layout(data_root, require_test=True)
    engine = InferenceEngine(bundle, engine_options)
    engine.warm_up()
    items = layout.test
    collector = _Collector(PixelSampler(pixels_per_image), RegionOverlap(), [], [])
    started = time.perf_counter()
    done = 0
    for batch in _batches(items, batch_size):
        result = engine.infer_images([read_image(item.path) for item in batch])
        collector.add_batch(batch, result.image_scores, result.anomaly_maps, result.latency_ms)
        done += len(batch)
        if progress is not None:
            progress(done, len(items))
    wall_s = time.perf_counter() - started
    scored = tuple(
        ScoredImage(item, score) for item, score in zip(items, collector.scores, strict=True)
    )
    report = _build_report(
        bundle, layout, scored, collector, batch_size, engine.providers, len(items) / wall_s
    )
    logger.info(
        "evaluated model=%s images=%d image_auroc=%s wall_s=%.2f",
        bundle.label,
        len(items),
        report.image_auroc,
        wall_s,
    )
    return EvaluationOutcome(report=report, bundle=bundle, engine=engine, scored=scored)


def _build_report(
    bundle: ModelBundle,
    layout: DatasetLayout,
    scored: Sequence[ScoredImage],
    collector: _Collector,
    batch_size: int,
    providers: Sequence[str],
    images_per_s: float,
) -> EvaluationReport:
    policy = bundle.manifest.decision
    types = [entry.item.defect_type for entry in scored]
    labels = np.array([entry.item.is_anomalous for entry in scored], dtype=bool)
    scores = np.array(collector.scores, dtype=np.float64)
    at_threshold = operating_point(labels, scores, policy.threshold)
    full_recall = fpr_at_full_recall(labels, scores)
    at_95_recall = fpr_at_recall(labels, scores, 0.95)
    return EvaluationReport(
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        bundle=bundle.label,
        bundle_dir=str(bundle.directory),
        data_root=str(layout.root),
        threshold=policy.threshold,
        uncertain_low=policy.uncertain_low,
        n_images=len(scored),
        n_good=int((~labels).sum()),
        n_defective=int(labels.sum()),
        counts=counts_by_type(types),
        image_auroc=image_auroc(labels, scores),
        pixel_auroc=collector.sampler.auroc(),
        pixel_auroc_images=collector.sampler.n_images,
        pixel_auroc_samples=collector.sampler.n_samples,
        fpr_at_full_recall=full_recall[0] if full_recall else None,
        full_recall_threshold=full_recall[1] if full_recall else None,
        fpr_at_95_recall=at_95_recall[0] if at_95_recall else None,
        aupro=collector.regions.aupro() if collector.sampler.auroc() is not None else None,
        recall_at_threshold=at_threshold.recall,
        false_alarm_rate_at_threshold=at_threshold.false_alarm_rate,
        at_threshold=at_threshold,
        at_band_low_edge=operating_point(labels, scores, policy.uncertain_low),
        per_defect=per_defect_metrics(types, scores, policy.threshold),
        latency=latency_stats(
            collector.per_image_ms,
            batch_size=batch_size,
            providers=providers,
            images_per_s=images_per_s,
        ),
        images=[
            ImageRecord(
                file=entry.item.path.relative_to(layout.root).as_posix(),
                defect_type=entry.item.defect_type,
                image_score=entry.image_score,
                verdict=policy.decide(entry.image_score).value,
            )
            for entry in scored
        ],
    )


def write_report(report: EvaluationReport, path: Path) -> Path:
    """Write ``report.json`` atomically (parent folders created) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(report.to_json())
    tmp.replace(path)
    return path

"""Detection metrics on a labelled test set, and the frozen report they fill.

Pure numpy and scikit-learn over arrays the runner collects, so every number
in ``report.json`` can be checked against a hand-computed case. The policy is
"false alarms are allowed, misses are not": a score at or above the threshold
is abnormal, and the false-alarm rate at full recall says what it costs to
miss no defect at all on this data.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import roc_auc_score

__all__ = [
    "GOOD",
    "REPORT_FORMAT_VERSION",
    "DefectTypeMetrics",
    "EvaluationReport",
    "ImageRecord",
    "LatencyStats",
    "OperatingPoint",
    "PixelSampler",
    "counts_by_type",
    "fpr_at_full_recall",
    "fpr_at_recall",
    "image_auroc",
    "latency_stats",
    "operating_point",
    "per_defect_metrics",
    "sanitize_scores",
]

GOOD = "good"
REPORT_FORMAT_VERSION = 2  # 2: fpr_at_95_recall and aupro
DEFAULT_PIXELS_PER_IMAGE = 4096

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OperatingPoint(_Frozen):
    """Recall and false-alarm rate when everything scoring ``>= threshold`` is flagged."""

    threshold: float
    recall: float | None = Field(description="flagged defects / defects; None without defects")
    false_alarm_rate: float | None = Field(description="flagged good / good; None without good")
    missed: int = Field(ge=0, description="defects scoring below the threshold")
    false_alarms: int = Field(ge=0, description="good images at or above the threshold")


class DefectTypeMetrics(_Frozen):
    """How well one defect type stands out from ``test/good``."""

    count: int = Field(ge=0)
    auroc: float | None = Field(description="this type against test/good; None without good")
    recall_at_threshold: float
    min_score: float
    mean_score: float


class LatencyStats(_Frozen):
    """Model time per image (ONNX Runtime ``run`` of a batch / batch size), after warm-up."""

    median_ms: float
    p95_ms: float
    mean_ms: float
    batch_size: int = Field(ge=1)
    n_images: int = Field(ge=0)
    providers: tuple[str, ...] = ()
    images_per_s: float = Field(ge=0.0, description="end to end: decode, resize and model")


class ImageRecord(_Frozen):
    """One test image's result, so a reader can find the file behind a number."""

    file: str = Field(description="path relative to the data root")
    defect_type: str
    image_score: float
    verdict: str


class EvaluationReport(_Frozen):
    """Everything ``report.json`` holds; built once, never edited."""

    format_version: int = REPORT_FORMAT_VERSION
    created_at: str
    bundle: str = Field(description="name:version")
    bundle_dir: str
    data_root: str
    threshold: float
    uncertain_low: float
    n_images: int
    n_good: int
    n_defective: int
    counts: dict[str, int] = Field(description="test images per type, good included")
    image_auroc: float | None
    pixel_auroc: float | None = Field(description="None when no defect image has a mask")
    pixel_auroc_images: int = Field(description="images whose pixels entered pixel AUROC")
    pixel_auroc_samples: int
    fpr_at_full_recall: float | None = Field(
        description="false-alarm rate at the lowest threshold that misses no defect"
    )
    full_recall_threshold: float | None
    fpr_at_95_recall: float | None = Field(
        default=None, description="false-alarm rate at the threshold that catches 95% of defects"
    )
    aupro: float | None = Field(
        default=None,
        description="MVTec per-region overlap: area under PRO up to FPR 0.3, normalised; "
        "None when no defect image has a mask",
    )
    recall_at_threshold: float | None
    false_alarm_rate_at_threshold: float | None
    at_threshold: OperatingPoint
    at_band_low_edge: OperatingPoint = Field(
        description="flagged = abnormal or uncertain: what a node sends back to the cloud"
    )
    per_defect: dict[str, DefectTypeMetrics]
    latency: LatencyStats
    images: list[ImageRecord]

    def to_json(self) -> str:
        """Serialise for ``report.json`` (indented, stable key order)."""
        return self.model_dump_json(indent=2) + "\n"


def sanitize_scores(scores: npt.ArrayLike) -> FloatArray:
    """Return float64 scores with NaN and infinities replaced by finite extremes.

    A NaN score is abnormal by policy (a model that cannot tell must not pass a
    part), so it becomes larger than every finite score; scikit-learn refuses
    NaN and infinity outright.
    """
    values = np.asarray(scores, dtype=np.float64).reshape(-1).copy()
    finite = values[np.isfinite(values)]
    high = float(finite.max()) + 1.0 if finite.size else 1.0
    low = float(finite.min()) - 1.0 if finite.size else -1.0
    values[np.isnan(values) | np.isposinf(values)] = high
    values[np.isneginf(values)] = low
    return values


def _both_classes(labels: BoolArray) -> bool:
    return bool(labels.any()) and not bool(labels.all())


def image_auroc(is_anomalous: npt.ArrayLike, scores: npt.ArrayLike) -> float | None:
    """Area under the ROC curve of defective against good images.

    Returns:
        The AUROC, or None when the set lacks good or defective images.
    """
    labels = np.asarray(is_anomalous, dtype=bool).reshape(-1)
    if not _both_classes(labels):
        return None
    return float(roc_auc_score(labels, sanitize_scores(scores)))


def operating_point(
    is_anomalous: npt.ArrayLike, scores: npt.ArrayLike, threshold: float
) -> OperatingPoint:
    """Recall and false-alarm rate when every score ``>= threshold`` is flagged."""
    labels = np.asarray(is_anomalous, dtype=bool).reshape(-1)
    flagged = sanitize_scores(scores) >= threshold
    n_defective = int(labels.sum())
    n_good = int(labels.size - n_defective)
    caught = int((flagged & labels).sum())
    false_alarms = int((flagged & ~labels).sum())
    return OperatingPoint(
        threshold=float(threshold),
        recall=caught / n_defective if n_defective else None,
        false_alarm_rate=false_alarms / n_good if n_good else None,
        missed=n_defective - caught,
        false_alarms=false_alarms,
    )


def fpr_at_recall(
    is_anomalous: npt.ArrayLike, scores: npt.ArrayLike, recall: float
) -> tuple[float, float] | None:
    """False-alarm rate at the highest threshold that still flags ``recall`` of the defects.

    That threshold is the k-th highest defect score, k = ceil(recall x defects);
    good images scoring at or above it (ties included, since ``>=`` flags) are
    the price of that recall.

    Returns:
        ``(false_alarm_rate, threshold)``, or None without both classes.
    """
    labels = np.asarray(is_anomalous, dtype=bool).reshape(-1)
    if not _both_classes(labels):
        return None
    values = sanitize_scores(scores)
    defect = np.sort(values[labels])[::-1]
    needed = max(1, math.ceil(recall * defect.size - 1e-9))
    threshold = float(defect[needed - 1])
    rate = float((values[~labels] >= threshold).mean())
    return rate, threshold


def fpr_at_full_recall(
    is_anomalous: npt.ArrayLike, scores: npt.ArrayLike
) -> tuple[float, float] | None:
    """False-alarm rate at the lowest threshold that still flags every defect.

    That threshold is the lowest defect score; good images scoring at or above
    it (ties included, since ``>=`` flags) are the price of missing nothing.

    Returns:
        ``(false_alarm_rate, threshold)``, or None without both classes.
    """
    return fpr_at_recall(is_anomalous, scores, 1.0)


def counts_by_type(defect_types: Sequence[str]) -> dict[str, int]:
    """Test images per type, ``good`` first, then defect types sorted."""
    counts = Counter(defect_types)
    order = ([GOOD] if GOOD in counts else []) + sorted(t for t in counts if t != GOOD)
    return {name: counts[name] for name in order}


def per_defect_metrics(
    defect_types: Sequence[str], scores: npt.ArrayLike, threshold: float
) -> dict[str, DefectTypeMetrics]:
    """Each defect type against ``test/good``: which kinds of defect hide best."""
    types = np.asarray(defect_types, dtype=object)
    values = sanitize_scores(scores)
    good = types == GOOD
    result: dict[str, DefectTypeMetrics] = {}
    for defect in sorted(set(defect_types) - {GOOD}):
        chosen = types == defect
        subset = good | chosen
        result[defect] = DefectTypeMetrics(
            count=int(chosen.sum()),
            auroc=image_auroc(chosen[subset], values[subset]),
            recall_at_threshold=float((values[chosen] >= threshold).mean()),
            min_score=float(values[chosen].min()),
            mean_score=float(values[chosen].mean()),
        )
    return result


def latency_stats(
    per_image_ms: Sequence[float],
    *,
    batch_size: int,
    providers: Sequence[str] = (),
    images_per_s: float = 0.0,
) -> LatencyStats:
    """Median, 95th percentile and mean of per-image model times."""
    values = np.asarray(per_image_ms, dtype=np.float64)
    if values.size == 0:
        values = np.zeros(1)
    return LatencyStats(
        median_ms=float(np.median(values)),
        p95_ms=float(np.percentile(values, 95)),
        mean_ms=float(values.mean()),
        batch_size=batch_size,
        n_images=len(per_image_ms),
        providers=tuple(providers),
        images_per_s=images_per_s,
    )


class PixelSampler:
    """Collects a fixed, seeded sample of pixels per image for pixel AUROC.

    Every image contributes the same number of uniformly drawn pixels, so each
    image weighs as much as in the full computation while memory stays bounded
    however large the test set. Good images count as all-normal masks; a
    defect image without a mask is skipped, its pixels being unknown.
    """

    def __init__(self, pixels_per_image: int = DEFAULT_PIXELS_PER_IMAGE, seed: int = 0) -> None:
        self.pixels_per_image = pixels_per_image
        self._rng = np.random.default_rng(seed)
        self._scores: list[FloatArray] = []
        self._labels: list[BoolArray] = []
        self._has_defect_mask = False

    @property
    def n_images(self) -> int:
        """Images that contributed pixels."""
        return len(self._scores)

    @property
    def n_samples(self) -> int:
        """Pixels collected so far."""
        return int(sum(part.size for part in self._scores))

    def add(
        self,
        anomaly_map: npt.NDArray[np.floating],
        mask: npt.NDArray[np.generic] | None,
        *,
        is_anomalous: bool,
    ) -> None:
        """Sample one image's map against its mask (resized to the map with nearest).

        Args:
            anomaly_map: (H, W) map at the model's input size.
            mask: the ground-truth mask at any size (non-zero = defect), or None.
            is_anomalous: False for ``test/good`` (an all-normal mask is implied).
        """
        height, width = anomaly_map.shape
        if is_anomalous and mask is None:
            return
        if mask is None:
            labels = np.zeros((height, width), dtype=bool)
        else:
            grey = np.asarray(mask)
            if grey.ndim == 3:
                grey = grey.max(axis=2)
            resized = cv2.resize(
                grey.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST
            )
            labels = resized > 0
            self._has_defect_mask = self._has_defect_mask or is_anomalous
        flat = sanitize_scores(anomaly_map)
        count = min(self.pixels_per_image, flat.size)
        index = self._rng.choice(flat.size, size=count, replace=False)
        self._scores.append(flat[index])
        self._labels.append(labels.reshape(-1)[index])

    def auroc(self) -> float | None:
        """Pixel AUROC, or None when no defect mask was seen or one class is missing."""
        if not self._has_defect_mask:
            return None
        labels = np.concatenate(self._labels)
        if not _both_classes(labels):
            return None
        return float(roc_auc_score(labels, np.concatenate(self._scores)))

"""AUPRO, MVTec AD's per-region overlap metric, on maps collected as they stream by.

Pixel AUROC lets one large defect outweigh many small ones; PRO (per-region
overlap) weighs every connected defect region the same, whatever its size, so a
detector that finds the big scratch but misses the pinhole is seen to miss it.
AUPRO is the area under the PRO curve against the false-positive rate of normal
pixels, up to FPR 0.3 (MVTec's choice), divided by 0.3 so that 1.0 is perfect.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["DEFAULT_MAX_FPR", "MAX_MAP_SIDE", "RegionOverlap", "aupro"]

DEFAULT_MAX_FPR = 0.3
# Maps are kept for the whole test set (AUPRO needs every threshold); at most this
# many pixels along the longer side keeps 400 images of a 1130 px part under 70 MB.
MAX_MAP_SIDE = 320

FloatArray = npt.NDArray[np.float64]


def _integrate(fpr: FloatArray, pro: FloatArray, max_fpr: float) -> float:
    """Trapezoid area under (fpr, pro) from 0 to ``max_fpr``, interpolated at the edge."""
    inside = fpr <= max_fpr
    xs, ys = fpr[inside], pro[inside]
    if xs[-1] < max_fpr and inside.sum() < fpr.size:
        nxt = int(inside.sum())
        x0, x1, y0, y1 = fpr[nxt - 1], fpr[nxt], pro[nxt - 1], pro[nxt]
        edge = y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0) if x1 > x0 else y1
        xs, ys = np.append(xs, max_fpr), np.append(ys, edge)
    area = float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2.0))
    return area / max_fpr


def aupro(
    normal_scores: npt.ArrayLike,
    region_scores: list[npt.NDArray[np.floating]],
    *,
    max_fpr: float = DEFAULT_MAX_FPR,
) -> float | None:
    """Normalised area under the PRO curve up to ``max_fpr``.

    Args:
        normal_scores: every normal pixel's score (good images and the normal
            part of defect images).
        region_scores: one array per connected defect region, its pixels' scores.
        max_fpr: where the integration stops.

    Returns:
        A value in [0, 1], or None without normal pixels or regions.
    """
    normal = np.asarray(normal_scores, dtype=np.float64).reshape(-1)
    regions = [np.asarray(part, dtype=np.float64).reshape(-1) for part in region_scores]
    regions = [part for part in regions if part.size]
    if normal.size == 0 or not regions:
        return None
    region_weights = [np.full(part.size, 1.0 / (part.size * len(regions))) for part in regions]
    scores = np.concatenate([normal, *regions])
    fpr_step = np.concatenate(
        [np.full(normal.size, 1.0 / normal.size), np.zeros(scores.size - normal.size)]
    )
    pro_step = np.concatenate([np.zeros(normal.size), *region_weights])
    order = np.argsort(-scores, kind="stable")
    scores, fpr, pro = scores[order], np.cumsum(fpr_step[order]), np.cumsum(pro_step[order])
    # One point per distinct threshold: a pixel is flagged when its score is >= it.
    last_of_tie = np.append(scores[1:] != scores[:-1], True)
    fpr = np.concatenate([[0.0], fpr[last_of_tie]])
    pro = np.concatenate([[0.0], pro[last_of_tie]])
    return _integrate(fpr, pro, max_fpr)


class RegionOverlap:
    """Collects maps and defect regions image by image; ``aupro()`` at the end.

    Maps larger than ``MAX_MAP_SIDE`` are shrunk (area average) and masks with
    them (a pixel is defect if any of it was), so a pinhole is never lost to
    the shrinking. A defect image without a mask is skipped, its pixels unknown.
    """

    def __init__(self, max_side: int = MAX_MAP_SIDE) -> None:
        self.max_side = max_side
        self._normal: list[npt.NDArray[np.float32]] = []
        self._regions: list[npt.NDArray[np.float32]] = []

    @property
    def n_regions(self) -> int:
        """Connected defect regions seen so far."""
        return len(self._regions)

    def _shrunk_size(self, height: int, width: int) -> tuple[int, int]:
        factor = min(1.0, self.max_side / max(height, width))
        return max(1, round(height * factor)), max(1, round(width * factor))

    def add(
        self,
        anomaly_map: npt.NDArray[np.floating],
        mask: npt.NDArray[np.generic] | None,
        *,
        is_anomalous: bool,
    ) -> None:
        """Add one image's map (H, W) and its mask at any size (non-zero = defect)."""
        if is_anomalous and mask is None:
            return
        height, width = self._shrunk_size(*anomaly_map.shape)
        # NaN is abnormal by policy (see metrics.sanitize_scores): above every finite score.
        values = np.nan_to_num(np.asarray(anomaly_map, dtype=np.float32), nan=np.inf)
        if (height, width) != values.shape:
            values = np.asarray(
                cv2.resize(values, (width, height), interpolation=cv2.INTER_AREA), np.float32
            )
        if mask is None:
            self._normal.append(values.reshape(-1))
            return
        grey = np.asarray(mask)
        grey = grey.max(axis=2) if grey.ndim == 3 else grey
        # Area-averaged, then any coverage counts: a defect smaller than a map pixel stays.
        defect = (grey > 0).astype(np.float32)
        covered = cv2.resize(defect, (width, height), interpolation=cv2.INTER_AREA) > 0
        self._normal.append(values[~covered])
        count, labels = cv2.connectedComponents(covered.astype(np.uint8), connectivity=8)
        self._regions.extend(values[labels == index] for index in range(1, count))

    def aupro(self, max_fpr: float = DEFAULT_MAX_FPR) -> float | None:
        """AUPRO over everything added, or None without defect regions."""
        if not self._normal:
            return None
        return aupro(np.concatenate(self._normal), list(self._regions), max_fpr=max_fpr)

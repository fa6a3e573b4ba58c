"""Recall-based threshold calibration: catch a target share of labelled defects.

The trainer sets the threshold from good images alone (a quantile of their
calibrated scores). Once people have labelled real defects, the threshold can
be lowered so that a target share of them is caught; it is never raised above
the good-image quantile, because "false alarms are allowed, misses are not":
labelled defects may only make the model stricter. ``retrain`` calls this with
reviewed defects; ``linewatch calibrate`` with a dataset's ``test/<defect>``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from cloud.errors import LinewatchError

__all__ = ["RecallCalibration", "recall_threshold"]

# Scores computed by torch before export and by ONNX Runtime after differ in the
# last digits; a threshold this far below the lowest caught defect keeps it caught.
SCORE_MARGIN = 1e-3


@dataclass(frozen=True)
class RecallCalibration:
    """The chosen threshold and what it achieves on the labelled defects."""

    threshold: float
    target_recall: float
    recall: float
    n_defects: int
    limited_by: str  # "recall": set by the defects; "good-quantile": the ceiling held


def recall_threshold(
    defect_scores: Sequence[float], *, recall: float, ceiling: float
) -> RecallCalibration:
    """The highest threshold that catches ``recall`` of the defects, never above ``ceiling``.

    Args:
        defect_scores: calibrated image scores of labelled defective images.
        recall: share of them to catch, in (0, 1].
        ceiling: the good-image quantile threshold the trainer chose; the result is at
            or below it, so calibrating on defects never lets more of them through.

    Returns:
        The threshold and the recall it achieves on ``defect_scores``.

    Raises:
        LinewatchError: no defect scores, or a recall outside (0, 1].
    """
    if not 0.0 < recall <= 1.0:
        msg = f"recall {recall}: give a share of defects to catch in (0, 1], e.g. 0.95"
        raise LinewatchError(msg)
    if not defect_scores:
        msg = "recall calibration: no labelled defects to calibrate on; label some or skip it"
        raise LinewatchError(msg)
    ranked = sorted(defect_scores, reverse=True)
    must_catch = math.ceil(recall * len(ranked) - 1e-9)
    by_recall = ranked[must_catch - 1] - SCORE_MARGIN
    threshold = min(by_recall, ceiling)
    caught = sum(score >= threshold for score in ranked)
    return RecallCalibration(
        threshold=threshold,
        target_recall=recall,
        recall=caught / len(ranked),
        n_defects=len(ranked),
        limited_by="recall" if by_recall < ceiling else "good-quantile",
    )

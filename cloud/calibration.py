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
from edge.runtime.policy import DecisionPolicy, RecallCalibrationRecord

__all__ = [
    "RecallCalibration",
    "check_recall",
    "good_quantile_policy",
    "lowered_policy",
    "recall_threshold",
]

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


def check_recall(recall: float) -> None:
    """Refuse a recall target outside (0, 1] before any image is scored.

    Raises:
        LinewatchError: a recall outside (0, 1] (or NaN).
    """
    if not 0.0 < recall <= 1.0:
        msg = f"recall {recall}: give a share of defects to catch in (0, 1], e.g. 0.95"
        raise LinewatchError(msg)


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
    check_recall(recall)
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


def lowered_policy(
    policy: DecisionPolicy,
    found: RecallCalibration,
    *,
    band_margin: float,
    defects: str,
    record: RecallCalibrationRecord | None = None,
) -> DecisionPolicy:
    """The good-quantile ``policy`` with the threshold ``found`` and the band moved with it.

    Args:
        policy: the good-image quantile policy; ``found`` was computed with its
            threshold as the ceiling.
        found: the threshold that catches the target share of the defects.
        band_margin: width of the uncertain band below the new threshold.
        defects: what the defects were, for the method line ("reviewed defects").
        record: the calibration record to keep in the policy, if any.

    Returns:
        The policy a manifest carries, its ``method`` saying how it was chosen.
    """
    method = (
        f"{policy.method}; lowered to {found.threshold:.3f} to catch {found.recall:.0%} of "
        f"{found.n_defects} {defects} (target {found.target_recall:.0%})"
        if found.limited_by == "recall"
        else f"{policy.method}; already catches {found.recall:.0%} of {defects}"
    )
    return DecisionPolicy(
        threshold=found.threshold,
        uncertain_low=found.threshold - band_margin,
        method=method,
        target_false_alarm_rate=policy.target_false_alarm_rate,
        band_margin=policy.band_margin,
        recall_calibration=record,
    )


def good_quantile_policy(policy: DecisionPolicy) -> DecisionPolicy:
    """The trainer's good-image quantile policy behind ``policy``: the ceiling to calibrate under.

    A policy a calibration already lowered keeps the quantile one in its record, so
    calibrating again starts from the trainer's threshold, not from the lowered one.
    """
    record = policy.recall_calibration
    if record is None:
        return policy
    return DecisionPolicy(
        threshold=record.good_quantile_threshold,
        uncertain_low=record.good_quantile_uncertain_low,
        method=record.good_quantile_method,
        target_false_alarm_rate=policy.target_false_alarm_rate,
        band_margin=policy.band_margin,
    )

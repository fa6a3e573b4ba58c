"""The decision policy: a calibrated score becomes normal, uncertain or abnormal.

"False alarms are allowed, misses are not": everything at or above the threshold
is abnormal; a band just below the threshold is uncertain, so the frames that
come close are sent back for an expert to look at. The numbers are data from
the bundle's manifest, never constants in code.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

__all__ = ["DecisionPolicy", "RecallCalibrationRecord", "Verdict"]


class Verdict(StrEnum):
    """What a node decided about one frame."""

    NORMAL = "normal"
    UNCERTAIN = "uncertain"
    ABNORMAL = "abnormal"


class RecallCalibrationRecord(BaseModel):
    """How ``linewatch calibrate`` lowered the threshold to catch labelled defects.

    The good-image quantile policy it started from is kept, so a later calibration
    starts from the same ceiling and not from a threshold already lowered. Unknown
    keys are kept (``extra="allow"``) so a newer cloud's record loads on this node.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    target_recall: float = Field(gt=0.0, le=1.0, description="share of defects to catch")
    recall: float = Field(ge=0.0, le=1.0, description="share caught at the threshold")
    n_defects: int = Field(ge=1, description="labelled defect images scored")
    limited_by: str = Field(description="'recall': set by the defects; 'good-quantile': ceiling")
    false_alarm_rate: float | None = Field(
        default=None, ge=0.0, le=1.0, description="share of test/good at or above the threshold"
    )
    n_good: int = Field(default=0, ge=0, description="good test images scored")
    good_quantile_threshold: float = Field(description="the ceiling: the trainer's threshold")
    good_quantile_uncertain_low: float
    good_quantile_method: str = ""
    data_root: str | None = None
    data_digest: str | None = Field(default=None, description="sha256 over the scored images")
    calibrated_at: str | None = None


class DecisionPolicy(BaseModel):
    """Threshold and uncertainty band on the calibrated score scale.

    Scores are z-scores of the held-out good images: 0 is a typical good part,
    1 is one standard deviation of good parts above it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold: float = Field(description="scores at or above it are abnormal")
    uncertain_low: float = Field(description="scores in [uncertain_low, threshold) are uncertain")
    method: str = Field(default="", description="how the numbers were chosen, for people")
    target_false_alarm_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    band_margin: float | None = Field(default=None, ge=0.0)
    recall_calibration: RecallCalibrationRecord | None = Field(
        default=None, description="set when labelled defects lowered the threshold"
    )

    @model_serializer(mode="wrap")
    def _record_only_when_set(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A policy without the record dumps as before it existed: same signing bytes.
        dumped: dict[str, Any] = handler(self)
        if self.recall_calibration is None:
            dumped.pop("recall_calibration", None)
        return dumped

    @model_validator(mode="after")
    def _band_below_threshold(self) -> DecisionPolicy:
        if self.uncertain_low > self.threshold:
            msg = (
                f"decision policy: uncertain_low {self.uncertain_low} is above threshold "
                f"{self.threshold}; the band must lie at or below the threshold"
            )
            raise ValueError(msg)
        return self

    def decide(self, image_score: float) -> Verdict:
        """Return the verdict for one calibrated image score.

        Args:
            image_score: the model's calibrated image score.

        Returns:
            ABNORMAL at or above the threshold, UNCERTAIN inside the band, else NORMAL.
            A NaN score is ABNORMAL: a model that cannot tell must not pass a part.
        """
        if not image_score < self.threshold:  # also catches NaN
            return Verdict.ABNORMAL
        if image_score >= self.uncertain_low:
            return Verdict.UNCERTAIN
        return Verdict.NORMAL

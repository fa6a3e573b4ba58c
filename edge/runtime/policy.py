"""The decision policy: a calibrated score becomes normal, uncertain or abnormal.

"False alarms are allowed, misses are not": everything at or above the threshold
is abnormal; a band just below the threshold is uncertain, so the frames that
come close are sent back for an expert to look at. The numbers are data from
the bundle's manifest, never constants in code.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DecisionPolicy", "Verdict"]


class Verdict(StrEnum):
    """What a node decided about one frame."""

    NORMAL = "normal"
    UNCERTAIN = "uncertain"
    ABNORMAL = "abnormal"


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

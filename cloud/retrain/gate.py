"""The gate a candidate must pass to replace production: no defect traded for fewer alarms.

On the regression set (the labelled test set plus every reviewed sample) the
candidate must (1) catch every defect production catches, each at its own
threshold, (2) keep its false-alarm rate on the good test images no worse, and
(3) raise fewer false alarms on the reviewed normals, which it was retrained to
accept (when production already raised none there, none is enough). The logic
is pure: it takes scores, so each rule is tested on numbers written by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["GateReport", "ItemSource", "RegressionItem", "judge"]


class ItemSource(StrEnum):
    """Where a regression item comes from."""

    TEST = "test"  # the dataset's labelled test/ folder
    REVIEW = "review"  # a sample a person reviewed


@dataclass(frozen=True)
class RegressionItem:
    """One labelled image of the regression set: a test file or a reviewed sample."""

    key: str  # the test file's path under the dataset, or "sample <id>"
    is_defect: bool
    source: ItemSource


class GateReport(BaseModel):
    """What the gate measured and decided; written as JSON and as MLflow tags."""

    model_config = ConfigDict(frozen=True)

    passed: bool
    reasons: list[str] = Field(description="why it failed; empty when it passed")
    production_threshold: float
    candidate_threshold: float
    n_test_good: int
    n_test_defects: int
    n_reviewed_normals: int
    n_reviewed_defects: int
    false_alarms_test_good_before: int
    false_alarms_test_good_after: int
    false_alarms_reviewed_before: int
    false_alarms_reviewed_after: int
    misses_before: int
    misses_after: int
    new_misses: list[str]

    @property
    def false_alarms_before(self) -> int:
        """Production's false alarms on every normal image of the regression set."""
        return self.false_alarms_test_good_before + self.false_alarms_reviewed_before

    @property
    def false_alarms_after(self) -> int:
        """The candidate's false alarms on every normal image of the regression set."""
        return self.false_alarms_test_good_after + self.false_alarms_reviewed_after


def _count(flags: Sequence[bool]) -> int:
    return sum(1 for flag in flags if flag)


def judge(
    items: Sequence[RegressionItem],
    production_scores: Sequence[float],
    candidate_scores: Sequence[float],
    *,
    production_threshold: float,
    candidate_threshold: float,
) -> GateReport:
    """Apply the gate's three rules to both models' scores on the regression set.

    A score at or above a model's threshold is flagged (abnormal), as on the line.
    """
    before = [score >= production_threshold for score in production_scores]
    after = [score >= candidate_threshold for score in candidate_scores]
    rows = list(zip(items, before, after, strict=True))
    test_good = [
        (b, a) for item, b, a in rows if item.source is ItemSource.TEST and not item.is_defect
    ]
    reviewed = [
        (b, a) for item, b, a in rows if item.source is ItemSource.REVIEW and not item.is_defect
    ]
    defects = [(item, b, a) for item, b, a in rows if item.is_defect]
    new_misses = [item.key for item, b, a in defects if b and not a]
    fa_good = (_count([b for b, _ in test_good]), _count([a for _, a in test_good]))
    fa_reviewed = (_count([b for b, _ in reviewed]), _count([a for _, a in reviewed]))
    reasons = []
    if new_misses:
        shown = ", ".join(new_misses[:10]) + (" …" if len(new_misses) > 10 else "")
        reasons.append(f"{len(new_misses)} defect(s) production catches are missed: {shown}")
    if fa_good[1] > fa_good[0]:
        reasons.append(
            f"false alarms on good test images rose from {fa_good[0]} to {fa_good[1]} "
            f"of {len(test_good)}"
        )
    if fa_reviewed[1] >= fa_reviewed[0] and fa_reviewed[1] > 0:
        reasons.append(
            f"false alarms on reviewed normals did not fall: {fa_reviewed[0]} before, "
            f"{fa_reviewed[1]} after, of {len(reviewed)}"
        )
    return GateReport(
        passed=not reasons,
        reasons=reasons,
        production_threshold=production_threshold,
        candidate_threshold=candidate_threshold,
        n_test_good=len(test_good),
        n_test_defects=sum(item.source is ItemSource.TEST for item, _, _ in defects),
        n_reviewed_normals=len(reviewed),
        n_reviewed_defects=sum(item.source is ItemSource.REVIEW for item, _, _ in defects),
        false_alarms_test_good_before=fa_good[0],
        false_alarms_test_good_after=fa_good[1],
        false_alarms_reviewed_before=fa_reviewed[0],
        false_alarms_reviewed_after=fa_reviewed[1],
        misses_before=_count([not b for _, b, _ in defects]),
        misses_after=_count([not a for _, _, a in defects]),
        new_misses=new_misses,
    )

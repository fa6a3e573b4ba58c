import math

import pytest
from pydantic import ValidationError

from edge.runtime.policy import DecisionPolicy, RecallCalibrationRecord, Verdict


@pytest.mark.parametrize(
    ("score", "verdict"),
    [
        (-3.0, Verdict.NORMAL),
        (1.49, Verdict.NORMAL),
        (1.5, Verdict.UNCERTAIN),
        (1.99, Verdict.UNCERTAIN),
        (2.0, Verdict.ABNORMAL),
        (40.0, Verdict.ABNORMAL),
        (math.nan, Verdict.ABNORMAL),
        (math.inf, Verdict.ABNORMAL),
    ],
)
def test_decide_maps_scores_to_verdicts(score: float, verdict: Verdict) -> None:
    policy = DecisionPolicy(threshold=2.0, uncertain_low=1.5)
    assert policy.decide(score) is verdict


def test_band_above_threshold_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"uncertain_low 3\.0 is above threshold 2\.0"):
        DecisionPolicy(threshold=2.0, uncertain_low=3.0)


def test_policy_is_frozen() -> None:
    policy = DecisionPolicy(threshold=2.0, uncertain_low=1.5)
    with pytest.raises(ValidationError):
        policy.threshold = 9.0  # type: ignore[misc]


def test_policy_without_a_recall_record_dumps_as_before() -> None:
    # Older manifests were signed over this exact dump: adding the field must not change it.
    policy = DecisionPolicy(threshold=2.0, uncertain_low=1.5, method="m")
    assert "recall_calibration" not in policy.model_dump(mode="json")


def test_recall_record_round_trips() -> None:
    record = RecallCalibrationRecord(
        target_recall=0.95,
        recall=1.0,
        n_defects=5,
        limited_by="recall",
        good_quantile_threshold=2.0,
        good_quantile_uncertain_low=1.5,
    )
    policy = DecisionPolicy(threshold=1.6, uncertain_low=1.1, recall_calibration=record)
    again = DecisionPolicy.model_validate(policy.model_dump(mode="json"))
    assert again == policy
    assert again.recall_calibration is not None
    assert again.recall_calibration.good_quantile_threshold == 2.0

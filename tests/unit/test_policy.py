import math

import pytest
from pydantic import ValidationError

from edge.runtime.policy import DecisionPolicy, Verdict


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

"""Retraining from reviewed samples: next training set, refit, gate, register, promote."""

from cloud.retrain.gate import GateReport, ItemSource, RegressionItem, judge
from cloud.retrain.refit import FitMethod
from cloud.retrain.service import RetrainOutcome, RetrainRequest, run_retrain

__all__ = [
    "FitMethod",
    "GateReport",
    "ItemSource",
    "RegressionItem",
    "RetrainOutcome",
    "RetrainRequest",
    "judge",
    "run_retrain",
]

"""Evaluate a bundle on a labelled test set: metrics, ``report.json`` and pictures.

``metrics`` and ``runner`` need no plotting library; ``report_pictures`` imports
matplotlib, so it is imported on its own by whoever draws.
"""

from cloud.evaluation.metrics import EvaluationReport, OperatingPoint
from cloud.evaluation.runner import EvaluationOutcome, evaluate_bundle, write_report

__all__ = [
    "EvaluationOutcome",
    "EvaluationReport",
    "OperatingPoint",
    "evaluate_bundle",
    "write_report",
]

"""Golden images: the node must reproduce the trainer's results before it trusts a model.

A different ONNX Runtime version or execution provider must never silently
change verdicts, so activation compares scores and a coarse digest of each
anomaly map against what the trainer computed, within stated tolerances.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.runtime.bundle import ModelBundle
from edge.runtime.engine import InferenceEngine
from edge.runtime.imaging import read_image

__all__ = ["GOLDEN_GRID", "GoldenCheck", "check_golden", "map_digest"]

GOLDEN_GRID = 8
# Calibrated scores are z-scores of good parts; 0.05 of a standard deviation
# is far below any threshold band, yet well above float noise between providers.
DEFAULT_SCORE_TOLERANCE = 0.05
DEFAULT_MAP_TOLERANCE = 0.1


def map_digest(anomaly_map: npt.NDArray[np.float32], grid: int = GOLDEN_GRID) -> list[list[float]]:
    """Mean-pool an (H, W) map to a ``grid`` x ``grid`` list of floats."""
    height, width = anomaly_map.shape
    rows = np.array_split(np.arange(height), grid)
    cols = np.array_split(np.arange(width), grid)
    return [[round(float(anomaly_map[np.ix_(r, c)].mean()), 5) for c in cols] for r in rows]


@dataclass(frozen=True)
class GoldenCheck:
    """The outcome of a parity check; ``passed`` only if every image is within tolerance."""

    passed: bool
    max_score_error: float
    max_map_error: float
    score_tolerance: float
    map_tolerance: float
    n_images: int

    @property
    def detail(self) -> str:
        """One line for logs and the deployer's record."""
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"parity {verdict} on {self.n_images} golden images: max score error "
            f"{self.max_score_error:.4f} (tolerance {self.score_tolerance}), max map error "
            f"{self.max_map_error:.4f} (tolerance {self.map_tolerance})"
        )


def check_golden(
    engine: InferenceEngine,
    bundle: ModelBundle,
    *,
    score_tolerance: float = DEFAULT_SCORE_TOLERANCE,
    map_tolerance: float = DEFAULT_MAP_TOLERANCE,
) -> GoldenCheck:
    """Run the bundle's golden images through ``engine`` and compare with the manifest."""
    score_errors: list[float] = [0.0]
    map_errors: list[float] = [0.0]
    for golden in bundle.manifest.golden:
        image = read_image(bundle.directory / golden.file)
        result = engine.infer_images([image])
        score_errors.append(abs(float(result.image_scores[0]) - golden.image_score))
        expected = np.asarray(golden.anomaly_map_digest, dtype=np.float64)
        actual = np.asarray(map_digest(result.anomaly_maps[0], expected.shape[0]))
        map_errors.append(float(np.abs(actual - expected).max()))
    max_score, max_map = max(score_errors), max(map_errors)
    return GoldenCheck(
        passed=max_score <= score_tolerance and max_map <= map_tolerance,
        max_score_error=max_score,
        max_map_error=max_map,
        score_tolerance=score_tolerance,
        map_tolerance=map_tolerance,
        n_images=len(bundle.manifest.golden),
    )

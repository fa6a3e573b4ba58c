"""The regression set and its scores: the labelled test set plus every reviewed sample.

Both models are run through the edge's own ``InferenceEngine`` (ONNX Runtime),
so the gate judges exactly what a node would decide.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cloud.dataset import load_layout
from cloud.errors import DatasetError
from cloud.retrain.gate import ItemSource, RegressionItem
from cloud.retrain.training_set import ReviewedSamples
from cloud.types import ProgressCallback
from edge.runtime.bundle import ModelBundle
from edge.runtime.engine import InferenceEngine
from edge.runtime.imaging import read_image

__all__ = ["RegressionSet", "regression_set", "score_set"]

logger = logging.getLogger(__name__)

_BATCH = 8


@dataclass(frozen=True)
class RegressionSet:
    """Labelled images to judge a candidate on, and where each one is."""

    items: tuple[RegressionItem, ...]
    paths: tuple[Path, ...]


def _test_items(data_root: Path | None) -> list[tuple[RegressionItem, Path]]:
    if data_root is None:
        logger.warning("no dataset known: the regression set holds reviewed samples only")
        return []
    try:
        layout = load_layout(data_root, require_test=True)
    except DatasetError as exc:
        logger.warning("no test set: the regression set holds reviewed samples only (%s)", exc)
        return []
    return [
        (
            RegressionItem(
                item.path.relative_to(layout.root).as_posix(), item.is_anomalous, ItemSource.TEST
            ),
            item.path,
        )
        for item in layout.test
    ]


def regression_set(data_root: Path | None, reviewed: ReviewedSamples) -> RegressionSet:
    """The dataset's ``test/`` images (when the dataset is known) and every reviewed sample."""
    pairs = _test_items(data_root)
    for sample in (*reviewed.normals, *reviewed.defects):
        item = RegressionItem(
            f"sample {sample.sample_id}", sample.label == "defect", ItemSource.REVIEW
        )
        pairs.append((item, sample.image))
    return RegressionSet(tuple(item for item, _ in pairs), tuple(path for _, path in pairs))


def score_set(
    bundle: ModelBundle, paths: Sequence[Path], progress: ProgressCallback | None = None
) -> list[float]:
    """Calibrated image scores of ``bundle`` on the images, as a node computes them."""
    engine = InferenceEngine(bundle)
    scores: list[float] = []
    for start in range(0, len(paths), _BATCH):
        batch = [read_image(path) for path in paths[start : start + _BATCH]]
        scores.extend(float(value) for value in engine.infer_images(batch).image_scores)
        if progress is not None:
            progress(len(scores), len(paths))
    return scores

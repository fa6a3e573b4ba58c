"""Write a bundle's golden images and the results the trainer computes for them.

Two held-out good images and one with a painted defect, so the parity check
covers both a quiet map and a hot one. Saved at the model's input size as PNG,
so no resize or lossy codec can differ between trainer and node.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from cloud.errors import TrainingError
from edge.runtime.bundle import MODEL_FILE, GoldenImage
from edge.runtime.golden import map_digest
from edge.runtime.imaging import ImageArray

__all__ = ["GOLDEN_DIR", "make_golden_images", "paint_defect"]

GOLDEN_DIR = "golden"


def paint_defect(image: ImageArray, seed: int) -> ImageArray:
    """Return a copy with a dark blot and a bright scratch: an unmistakable anomaly."""
    rng = np.random.default_rng(seed)
    height, width = image.shape[:2]
    painted = image.copy()
    centre = (
        int(rng.integers(width // 4, 3 * width // 4)),
        int(rng.integers(height // 4, 3 * height // 4)),
    )
    axes = (max(3, width // 10), max(2, height // 14))
    cv2.ellipse(painted, centre, axes, float(rng.integers(0, 180)), 0, 360, (20, 20, 20), -1)
    start = (int(rng.integers(0, width // 3)), int(rng.integers(0, height)))
    end = (int(rng.integers(2 * width // 3, width)), int(rng.integers(0, height)))
    cv2.line(painted, start, end, (245, 245, 245), max(1, width // 80))
    return painted


def _write_png(path: Path, image: ImageArray) -> None:
    if not cv2.imwrite(str(path), image):
        msg = f"cannot write {path}; check the disk and permissions"
        raise TrainingError(msg)


def make_golden_images(
    bundle_dir: Path, good_images: Sequence[ImageArray], *, seed: int = 0
) -> list[GoldenImage]:
    """Write golden PNGs under ``bundle_dir/golden`` and score them with ONNX Runtime on CPU."""
    if not good_images:
        msg = "golden images: need at least one held-out good image"
        raise TrainingError(msg)
    folder = bundle_dir / GOLDEN_DIR
    folder.mkdir(exist_ok=True)
    named = [(f"good_{i}.png", image) for i, image in enumerate(good_images)]
    named.append(("defect_0.png", paint_defect(good_images[0], seed)))
    for file_name, image in named:
        _write_png(folder / file_name, image)
    scores, maps = _reference_scores(bundle_dir, np.stack([image for _, image in named]))
    return [
        GoldenImage(
            file=f"{GOLDEN_DIR}/{file_name}",
            image_score=round(float(scores[i]), 6),
            anomaly_map_digest=map_digest(maps[i]),
        )
        for i, (file_name, _) in enumerate(named)
    ]


def _reference_scores(
    bundle_dir: Path, batch: npt.NDArray[np.uint8]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Run the graph alone on ONNX Runtime's CPU provider: the reference every node must match."""
    session = ort.InferenceSession(str(bundle_dir / MODEL_FILE), providers=["CPUExecutionProvider"])
    scores, maps = session.run(["image_score", "anomaly_map"], {"image": batch})
    return np.asarray(scores, dtype=np.float32), np.asarray(maps, dtype=np.float32)

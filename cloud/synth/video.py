"""A line video: synthetic parts passing under a camera, some of them defective.

The demo feeds it to edge nodes as if it came from a line camera. Each part
stays in view for a few frames, with steady lighting but fresh sensor noise and
a pixel or two of vibration per frame. A sidecar JSON next to the video says
which frames show which part and which defect, so a run can be scored.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from cloud.errors import DatasetError
from cloud.synth.capture import light, sense, to_uint8
from cloud.synth.defects import DEFECT_TYPES
from cloud.synth.parts import compose_part, normalise_size
from cloud.synth.textures import resolve_category

__all__ = ["LinePart", "LineVideoLabels", "read_video_labels", "write_line_video"]

logger = logging.getLogger(__name__)

# Keeps video generators apart from the dataset's ([seed, split, index]) ones.
_VIDEO_STREAM = 1000
_MAX_VIBRATION_PX = 1.5


@dataclass(frozen=True)
class LinePart:
    """One part on the line: the frames it is in view and its defect (None if good)."""

    index: int
    first_frame: int
    last_frame: int
    defect_type: str | None


@dataclass(frozen=True)
class LineVideoLabels:
    """What a line video shows, read from its sidecar JSON."""

    video: Path
    category: str
    seed: int
    fps: float
    n_frames: int
    frames_per_part: int
    parts: tuple[LinePart, ...]

    @property
    def defective_frames(self) -> tuple[int, ...]:
        """Indices of the frames that show a defective part."""
        return tuple(
            frame
            for part in self.parts
            if part.defect_type is not None
            for frame in range(part.first_frame, part.last_frame + 1)
        )


def _plan_parts(
    rng: np.random.Generator, n_frames: int, frames_per_part: int, defect_rate: float
) -> tuple[LinePart, ...]:
    n_parts = math.ceil(n_frames / frames_per_part)
    n_defective = round(n_parts * defect_rate)
    defective = set(rng.choice(n_parts, size=n_defective, replace=False).tolist())
    defects = rng.choice(len(DEFECT_TYPES), size=n_parts)
    return tuple(
        LinePart(
            index=index,
            first_frame=index * frames_per_part,
            last_frame=min(n_frames, (index + 1) * frames_per_part) - 1,
            defect_type=DEFECT_TYPES[int(defects[index])] if index in defective else None,
        )
        for index in range(n_parts)
    )


def _vibrate(image: NDArray[np.float32], rng: np.random.Generator) -> NDArray[np.float32]:
    height, width, channels = image.shape
    dx, dy = rng.uniform(-_MAX_VIBRATION_PX, _MAX_VIBRATION_PX, 2)
    matrix = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    moved = cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
    return moved.reshape(height, width, channels).astype(np.float32)


def _check_arguments(
    out: Path, n_frames: int, fps: float, defect_rate: float, frames_per_part: int
) -> None:
    if out.suffix.lower() != ".avi":
        msg = f"video {out}: must end in .avi (lossless FFV1 in an AVI container)"
        raise DatasetError(msg)
    if n_frames < 1 or frames_per_part < 1:
        msg = (
            f"video {out}: n_frames {n_frames} and frames_per_part {frames_per_part} "
            "must be 1 or more"
        )
        raise DatasetError(msg)
    if not fps > 0:
        msg = f"video {out}: fps {fps} must be above 0"
        raise DatasetError(msg)
    if not 0.0 <= defect_rate <= 1.0:
        msg = f"video {out}: defect_rate {defect_rate} must be between 0 and 1"
        raise DatasetError(msg)


def _count_frames(out: Path) -> int:
    capture = cv2.VideoCapture(str(out))
    try:
        if not capture.isOpened():
            return -1
        count = 0
        while capture.grab():
            count += 1
        return count
    finally:
        capture.release()


def write_line_video(
    out: Path,
    *,
    seed: int = 0,
    category: str = "metal",
    n_frames: int = 200,
    fps: float = 25.0,
    defect_rate: float = 0.1,
    size: tuple[int, int] | int = 256,
    frames_per_part: int = 5,
) -> Path:
    """Write a lossless (FFV1) ``.avi`` of parts passing by, labelled in a JSON sidecar.

    Args:
        out: the video path; must end in ``.avi``. Its folder is created.
        seed: 0 or more; the same seed shows the same parts and defects.
        category: one of ``CATEGORIES``.
        n_frames: frames in the video.
        fps: frames per second recorded in the file.
        defect_rate: share of parts that carry one defect (0 to 1).
        size: ``256`` or ``(width, height)``.
        frames_per_part: frames each part stays in view.

    Returns:
        ``out``. Read the labels back with ``read_video_labels(out)``.

    Raises:
        DatasetError: a bad argument, or OpenCV could not write or read back the video.
    """
    out = Path(out)
    resolve_category(category)
    width, height = normalise_size(size)
    _check_arguments(out, n_frames, fps, defect_rate, frames_per_part)
    if seed < 0:
        msg = f"seed {seed}: must be 0 or more"
        raise DatasetError(msg)
    parts = _plan_parts(
        np.random.default_rng([seed, _VIDEO_STREAM]), n_frames, frames_per_part, defect_rate
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    # Lossless, as an inspection camera's stream: JPEG blocks would look unlike every good part.
    fourcc = cv2.VideoWriter.fourcc(*"FFV1")
    writer = cv2.VideoWriter(str(out), fourcc, float(fps), (width, height), True)
    if not writer.isOpened():
        msg = f"video {out}: OpenCV could not open an FFV1 writer; check the folder is writable"
        raise DatasetError(msg)
    try:
        for part in parts:
            rng = np.random.default_rng([seed, _VIDEO_STREAM, part.index])
            scene, _ = compose_part(category, rng, (width, height), part.defect_type)
            lit = light(scene, rng)
            for _frame in range(part.first_frame, part.last_frame + 1):
                pixels = to_uint8(sense(_vibrate(lit, rng), rng))
                code = cv2.COLOR_GRAY2BGR if pixels.ndim == 2 else cv2.COLOR_RGB2BGR
                writer.write(cv2.cvtColor(pixels, code))
    finally:
        writer.release()
    frames_read = _count_frames(out)
    if frames_read != n_frames:
        msg = (
            f"video {out}: wrote {n_frames} frames but OpenCV reads back {frames_read}; "
            "this OpenCV build may lack the FFV1 codec"
        )
        raise DatasetError(msg)
    labels = LineVideoLabels(out, category, seed, float(fps), n_frames, frames_per_part, parts)
    out.with_suffix(".json").write_text(_labels_json(labels, (width, height)), encoding="utf-8")
    logger.info(
        "wrote line video path=%s frames=%d parts=%d defective_parts=%d",
        out,
        n_frames,
        len(parts),
        sum(part.defect_type is not None for part in parts),
    )
    return out


def _labels_json(labels: LineVideoLabels, size: tuple[int, int]) -> str:
    data = {
        "video": labels.video.name,
        "category": labels.category,
        "seed": labels.seed,
        "fps": labels.fps,
        "n_frames": labels.n_frames,
        "frames_per_part": labels.frames_per_part,
        "size": list(size),
        "defective_frames": list(labels.defective_frames),
        "parts": [
            {
                "index": part.index,
                "first_frame": part.first_frame,
                "last_frame": part.last_frame,
                "defect_type": part.defect_type,
            }
            for part in labels.parts
        ],
    }
    return json.dumps(data, indent=2) + "\n"


def read_video_labels(video: Path) -> LineVideoLabels:
    """Read the sidecar JSON that ``write_line_video`` wrote next to ``video``.

    Raises:
        DatasetError: the sidecar is missing or not one this module wrote.
    """
    video = Path(video)
    sidecar = video.with_suffix(".json")
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
        parts = tuple(
            LinePart(
                int(item["index"]),
                int(item["first_frame"]),
                int(item["last_frame"]),
                item["defect_type"],
            )
            for item in data["parts"]
        )
        return LineVideoLabels(
            video=video,
            category=str(data["category"]),
            seed=int(data["seed"]),
            fps=float(data["fps"]),
            n_frames=int(data["n_frames"]),
            frames_per_part=int(data["frames_per_part"]),
            parts=parts,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = (
            f"video labels {sidecar}: missing or unreadable ({exc}); "
            "write the video again with linewatch synth --video"
        )
        raise DatasetError(msg) from exc

"""One image in, one ``InspectedFrame`` out: decode, resize, infer, decide.

The camera loop and the gRPC servicer share this path, so a frame from a camera
and the same frame sent over gRPC get the same verdict.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import numpy as np

from edge.frames import InspectedFrame
from edge.model_slot import ModelSlot
from edge.runtime.errors import ImageDecodeError, ImageTooLarge
from edge.runtime.imaging import (
    DEFAULT_MAX_PIXELS,
    ImageArray,
    decode_image,
    resize_for_model,
    to_bgr,
)

__all__ = ["Inspection", "Inspector", "new_frame_id", "now_ms"]

_RAW_CHANNELS = (1, 3, 4)


@dataclass(frozen=True)
class Inspection:
    """An inspected frame and the time ONNX Runtime alone took for it."""

    frame: InspectedFrame
    inference_ms: float


def new_frame_id() -> str:
    """A unique frame id for frames that arrive without one."""
    return uuid.uuid4().hex


def now_ms() -> int:
    """Unix epoch milliseconds now."""
    return time.time_ns() // 1_000_000


class Inspector:
    """Turns images into verdicts with whatever model the slot holds at that moment."""

    def __init__(self, slot: ModelSlot, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.slot = slot
        self.max_pixels = max_pixels

    def inspect_encoded(self, data: bytes, *, frame_id: str = "") -> Inspection:
        """Inspect PNG/JPEG/BMP/TIFF bytes.

        Raises:
            NoModelLoaded: no active model (checked before decoding: no wasted work).
            ImageDecodeError: bytes that are not an image.
            ImageTooLarge: an image over ``max_pixels``.
        """
        started = time.perf_counter()
        self.slot.current()
        image = decode_image(data, max_pixels=self.max_pixels)
        return self.inspect_image(image, frame_id=frame_id, started=started)

    def inspect_raw(
        self, height: int, width: int, channels: int, pixels: bytes, *, frame_id: str = ""
    ) -> Inspection:
        """Inspect row-major uint8 pixels: 1 (grey), 3 (BGR) or 4 (BGRA) channels.

        Raises:
            NoModelLoaded: no active model.
            ImageDecodeError: a shape that does not match the pixel bytes.
            ImageTooLarge: more than ``max_pixels`` pixels.
        """
        started = time.perf_counter()
        self.slot.current()
        image = self._raw_to_image(height, width, channels, pixels)
        return self.inspect_image(image, frame_id=frame_id, started=started)

    def _raw_to_image(self, height: int, width: int, channels: int, pixels: bytes) -> ImageArray:
        if height <= 0 or width <= 0:
            msg = f"raw image: height {height} and width {width} must both be positive"
            raise ImageDecodeError(msg)
        if channels not in _RAW_CHANNELS:
            msg = f"raw image: channels {channels}; send 1 (grey), 3 (BGR) or 4 (BGRA)"
            raise ImageDecodeError(msg)
        if height * width > self.max_pixels:
            msg = f"raw image: {width}x{height} is over the limit of {self.max_pixels} pixels"
            raise ImageTooLarge(msg)
        expected = height * width * channels
        if len(pixels) != expected:
            msg = (
                f"raw image: {len(pixels)} pixel bytes, but {height}x{width}x{channels} "
                f"needs {expected}"
            )
            raise ImageDecodeError(msg)
        array = np.frombuffer(pixels, dtype=np.uint8).reshape(height, width, channels)
        return to_bgr(array)

    def inspect_image(
        self,
        image: ImageArray,
        *,
        frame_id: str = "",
        captured_at_ms: int | None = None,
        started: float | None = None,
    ) -> Inspection:
        """Inspect a decoded BGR uint8 image of any size.

        Args:
            image: the frame as captured.
            frame_id: echoed into the result; a new id when empty.
            captured_at_ms: when the camera took it; now when None.
            started: ``time.perf_counter()`` when the work on this frame began (decode).

        Raises:
            NoModelLoaded: no active model.
            EngineError: ONNX Runtime failed.
        """
        begun = time.perf_counter() if started is None else started
        active = self.slot.current()  # one model for the whole frame, even across a swap
        engine = active.engine
        resized = resize_for_model(image, engine.input_height, engine.input_width)
        result = engine.run(resized[np.newaxis])
        score = float(result.image_scores[0])
        verdict = active.policy.decide(score)
        latency_ms = (time.perf_counter() - begun) * 1000.0
        frame = InspectedFrame(
            frame_id=frame_id or new_frame_id(),
            captured_at_ms=now_ms() if captured_at_ms is None else captured_at_ms,
            image=image,
            anomaly_map=result.anomaly_maps[0],
            image_score=score,
            verdict=verdict,
            threshold=active.policy.threshold,
            uncertain_low=active.policy.uncertain_low,
            model=active.identity,
            latency_ms=latency_ms,
        )
        return Inspection(frame=frame, inference_ms=result.latency_ms)

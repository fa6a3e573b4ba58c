"""One image in, one ``InspectedFrame`` out: decode, resize, infer, decide.

The camera loop and the gRPC servicer share this path, so a frame from a camera
and the same frame sent over gRPC get the same verdict. Decoding happens in the
caller's thread; inference goes through a ``Batcher``, so frames that wait at
the same moment (a stream's window, concurrent unary calls, the camera) run
through ONNX Runtime together, while each keeps its own latency and verdict.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from edge.batcher import Batcher, Ticket
from edge.frames import InspectedFrame
from edge.model_slot import ActiveModel, ModelSlot
from edge.runtime.errors import ImageDecodeError, ImageTooLarge
from edge.runtime.imaging import (
    DEFAULT_MAX_PIXELS,
    ImageArray,
    decode_image,
    resize_for_model,
    to_bgr,
)

__all__ = ["Inspection", "Inspector", "PendingInspection", "new_frame_id", "now_ms"]

_RAW_CHANNELS = (1, 3, 4)


@dataclass(frozen=True)
class Inspection:
    """An inspected frame and the time ONNX Runtime alone took for it.

    ``inference_ms`` is this frame's share of its batch's ONNX Runtime run (run
    time / batch size), so frames x ``inference_ms`` stays the time the model was
    busy and figures at batch 1 and batch 8 compare. ``frame.latency_ms`` is the
    frame's own wall time from decode to decision, queueing included.
    """

    frame: InspectedFrame
    inference_ms: float
    batch_size: int = 1


@dataclass(frozen=True)
class _Prepared:
    """A decoded, resized frame waiting for its batch."""

    image: ImageArray
    resized: ImageArray
    frame_id: str
    captured_at_ms: int | None
    started: float


PendingInspection = Ticket[Inspection]


def new_frame_id() -> str:
    """A unique frame id for frames that arrive without one."""
    return uuid.uuid4().hex


def now_ms() -> int:
    """Unix epoch milliseconds now."""
    return time.time_ns() // 1_000_000


class Inspector:
    """Turns images into verdicts with the model the slot held when each frame arrived."""

    def __init__(
        self,
        slot: ModelSlot,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        batch_max: int = 8,
        batch_wait_ms: float = 0.0,
        max_runs: int = 2,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        """Set the input limit and the batch bounds.

        Args:
            slot: holds the active model; read once per frame, at admission.
            max_pixels: larger images are refused before they cost memory.
            batch_max: most frames in one ONNX Runtime run (1: no batching).
            batch_wait_ms: how long a batch may wait for frames still decoding.
            max_runs: ONNX Runtime runs at once (about the cores it may use).
            on_batch: told each batch's size (the node's histogram).
        """
        self.slot = slot
        self.max_pixels = max_pixels
        self.batcher: Batcher[ActiveModel, _Prepared, Inspection] = Batcher(
            _run_batch,
            batch_max=batch_max,
            batch_wait_ms=batch_wait_ms,
            max_runs=max_runs,
            on_batch=on_batch,
        )

    def inspect_encoded(self, data: bytes, *, frame_id: str = "") -> Inspection:
        """Inspect PNG/JPEG/BMP/TIFF bytes.

        Raises:
            NoModelLoaded: no active model (checked before decoding: no wasted work).
            ImageDecodeError: bytes that are not an image.
            ImageTooLarge: an image over ``max_pixels``.
        """
        return self.submit_encoded(data, frame_id=frame_id).result()

    def submit_encoded(self, data: bytes, *, frame_id: str = "") -> PendingInspection:
        """Decode now and queue the frame for inference; ``result()`` gives the inspection.

        Raises:
            NoModelLoaded, ImageDecodeError, ImageTooLarge: as ``inspect_encoded``.
        """
        started = time.perf_counter()
        active = self.slot.current()
        with self.batcher.incoming():
            image = decode_image(data, max_pixels=self.max_pixels)
            return self._submit(active, image, frame_id, None, started)

    def inspect_raw(
        self, height: int, width: int, channels: int, pixels: bytes, *, frame_id: str = ""
    ) -> Inspection:
        """Inspect row-major uint8 pixels: 1 (grey), 3 (BGR) or 4 (BGRA) channels.

        Raises:
            NoModelLoaded: no active model.
            ImageDecodeError: a shape that does not match the pixel bytes.
            ImageTooLarge: more than ``max_pixels`` pixels.
        """
        return self.submit_raw(height, width, channels, pixels, frame_id=frame_id).result()

    def submit_raw(
        self, height: int, width: int, channels: int, pixels: bytes, *, frame_id: str = ""
    ) -> PendingInspection:
        """Check and convert raw pixels now, and queue the frame for inference.

        Raises:
            NoModelLoaded, ImageDecodeError, ImageTooLarge: as ``inspect_raw``.
        """
        started = time.perf_counter()
        active = self.slot.current()
        with self.batcher.incoming():
            image = self._raw_to_image(height, width, channels, pixels)
            return self._submit(active, image, frame_id, None, started)

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
        return self._submit(active, image, frame_id, captured_at_ms, begun).result()

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Finish every queued frame (at shutdown); True if done within ``timeout_s``."""
        return self.batcher.drain(timeout_s)

    def _submit(
        self,
        active: ActiveModel,
        image: ImageArray,
        frame_id: str,
        captured_at_ms: int | None,
        started: float,
    ) -> PendingInspection:
        engine = active.engine
        resized = resize_for_model(image, engine.input_height, engine.input_width)
        prepared = _Prepared(image, resized, frame_id, captured_at_ms, started)
        return self.batcher.submit(active, prepared)


def _run_batch(active: ActiveModel, frames: Sequence[_Prepared]) -> list[Inspection]:
    """One ONNX Runtime run for frames of one model; a verdict and latency per frame."""
    result = active.engine.run(np.stack([frame.resized for frame in frames]))
    finished = time.perf_counter()
    share_ms = result.latency_ms / len(frames)
    inspections = []
    for index, prepared in enumerate(frames):
        score = float(result.image_scores[index])
        frame = InspectedFrame(
            frame_id=prepared.frame_id or new_frame_id(),
            captured_at_ms=now_ms() if prepared.captured_at_ms is None else prepared.captured_at_ms,
            image=prepared.image,
            anomaly_map=result.anomaly_maps[index],
            image_score=score,
            verdict=active.policy.decide(score),
            threshold=active.policy.threshold,
            uncertain_low=active.policy.uncertain_low,
            model=active.identity,
            latency_ms=(finished - prepared.started) * 1000.0,
        )
        inspections.append(Inspection(frame, share_ms, len(frames)))
    return inspections

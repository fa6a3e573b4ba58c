"""What the node knows about one inspected frame and about itself, and the sinks that receive it.

The camera loop and the gRPC servicer hand every ``InspectedFrame`` to each
``VerdictSink`` (the local record, the MQTT outbox, …), so those parts never
depend on where frames come from. A ``Heartbeat`` is what the node says about
itself in its status messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge.runtime.imaging import ImageArray
from edge.runtime.policy import Verdict

__all__ = ["Heartbeat", "InspectedFrame", "ModelIdentity", "VerdictSink"]


@dataclass(frozen=True)
class ModelIdentity:
    """Which model judged a frame."""

    name: str
    version: str
    model_sha256: str


@dataclass(frozen=True)
class Heartbeat:
    """What a node announces in its status: how much it has done and which model it runs."""

    frames_processed: int = 0
    frames_dropped: int = 0
    model: ModelIdentity | None = None  # None until a model is active


@dataclass(frozen=True)
class InspectedFrame:
    """One frame after inference and decision."""

    frame_id: str
    captured_at_ms: int  # Unix epoch milliseconds
    image: ImageArray  # BGR uint8 as captured (not resized)
    anomaly_map: npt.NDArray[np.float32]  # model input size, calibrated score scale
    image_score: float
    verdict: Verdict
    threshold: float
    uncertain_low: float
    model: ModelIdentity
    latency_ms: float


class VerdictSink(Protocol):
    """Receives every inspected frame; must return quickly (queue heavy work)."""

    def handle(self, frame: InspectedFrame) -> None:
        """Take one frame; flagged ones must not be lost."""
        ...

    def close(self) -> None:
        """Flush and release resources."""
        ...

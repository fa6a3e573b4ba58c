"""Shared pytest fixtures: edge.

Real parts only: a real ONNX bundle (``tiny_bundle``), a real gRPC server on
127.0.0.1 port 0, a real SQLite record in a temp directory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest

from edge.camera import CameraFrame
from edge.frames import InspectedFrame
from edge.inspector import now_ms
from edge.node import EdgeNode
from edge.runtime.bundle import ModelBundle
from edge.runtime.errors import CameraError
from edge.settings import EdgeSettings

__all__ = [
    "BurstCamera",
    "GateSink",
    "ListSink",
    "decode",
    "encode_png",
    "grey_image",
    "wait_until",
    "write_video",
]

# Grey levels of the tiny bundle: score = |grey - 128| / 32, threshold 2.0, band from 1.5.
NORMAL_GREY = 128
UNCERTAIN_GREY = 184  # score 1.75
ABNORMAL_GREY = 255  # score ~3.97


def grey_image(level: int, size: int = 64) -> np.ndarray:
    """A flat BGR image of one grey level."""
    return np.full((size, size, 3), level, dtype=np.uint8)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an image."""
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return bytes(encoded.tobytes())


def decode(data: bytes | Path, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    """Decode image bytes (or read a file) with OpenCV, failing the test if it cannot."""
    if isinstance(data, Path):
        data = data.read_bytes()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    assert image is not None, "not an image OpenCV can decode"
    return image


def write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    """Write BGR frames as an MJPG AVI (OpenCV can always read it back)."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def wait_until(
    condition: Callable[[], bool], timeout_s: float = 10.0, what: str = "", *, poll_s: float = 0.005
) -> None:
    """Poll ``condition`` until true or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what or condition}")
        time.sleep(poll_s)  # poll interval, not a wait for an event


class BurstCamera:
    """A live source that delivers ``count`` frames at once, then waits like a quiet camera."""

    live = True
    description = "burst camera"

    def __init__(self, count: int) -> None:
        self.count = count
        self.index = 0
        self.exhausted = threading.Event()
        self.release = threading.Event()

    def open(self) -> None:
        self.index = 0

    def read(self) -> CameraFrame | None:
        if self.index >= self.count:
            self.exhausted.set()
            self.release.wait(10.0)
            msg = "burst camera: stream lost"
            raise CameraError(msg)
        frame = CameraFrame(np.full((8, 8, 3), self.index % 256, np.uint8), now_ms(), self.index)
        self.index += 1
        return frame

    def close(self) -> None:
        """Nothing to release."""


class ListSink:
    """A VerdictSink that keeps every frame in memory (a real, trivial sink)."""

    def __init__(self) -> None:
        self.frames: list[InspectedFrame] = []
        self.closed = False
        self._lock = threading.Lock()

    def handle(self, frame: InspectedFrame) -> None:
        with self._lock:
            self.frames.append(frame)

    def close(self) -> None:
        self.closed = True


class GateSink(ListSink):
    """A VerdictSink that holds each caller until the gate opens: a deliberately slow sink."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.gate = threading.Event()

    def handle(self, frame: InspectedFrame) -> None:
        self.entered.set()
        self.gate.wait(30.0)
        super().handle(frame)


@pytest.fixture
def edge_settings(tmp_path: Path) -> EdgeSettings:
    """Settings for a node in a temp directory, small and quick to retry.

    Plaintext (``insecure``): these tests are about serving; mTLS has its own
    (tests/integration/test_node_mtls.py).
    """
    return EdgeSettings(
        grpc="127.0.0.1:0",
        insecure=True,
        record_dir=tmp_path / "record",
        shutdown_grace_s=5.0,
        reconnect_initial_s=0.02,
        reconnect_max_s=0.1,
        warmup_runs=1,
        intra_op_threads=1,
        max_pixels=1_000_000,
        max_message_bytes=4 * 1024 * 1024,
    )


@pytest.fixture
def empty_node(edge_settings: EdgeSettings) -> Iterator[EdgeNode]:
    """A started node with no model loaded (gRPC only)."""
    node = EdgeNode(edge_settings)
    node.start()
    yield node
    node.stop(grace_s=1.0)


@pytest.fixture
def edge_node(empty_node: EdgeNode, tiny_bundle: ModelBundle) -> EdgeNode:
    """A started node serving the tiny bundle."""
    empty_node.load(tiny_bundle)
    return empty_node


@pytest.fixture
def edge_channel(empty_node: EdgeNode) -> Iterator[grpc.Channel]:
    """A channel to the node's gRPC port."""
    channel = grpc.insecure_channel(f"127.0.0.1:{empty_node.port}")
    yield channel
    channel.close()

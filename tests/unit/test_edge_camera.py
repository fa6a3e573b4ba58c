"""Camera sources and the reader: order, no drops from files, drop-oldest live, backoff."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera import (
    Backoff,
    CameraFrame,
    CameraReader,
    ImageFolderSource,
    VideoCaptureSource,
    open_source,
)
from edge.metrics import NodeMetrics
from tests.plugins.edge import BurstCamera, wait_until, write_video


def _write_images(folder: Path, count: int) -> list[str]:
    folder.mkdir()
    names = [f"img-{i:03d}.png" for i in range(count)]
    for i, name in enumerate(reversed(names)):  # written out of order on purpose
        cv2.imwrite(str(folder / name), np.full((16, 16, 3), count - 1 - i, np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return names


def _drain(reader: CameraReader) -> list[CameraFrame]:
    frames: list[CameraFrame] = []
    while not reader.finished:
        frame = reader.get(5.0)
        if frame is not None:
            frames.append(frame)
    return frames


def test_image_folder_is_read_once_in_name_order_without_drops(tmp_path: Path) -> None:
    names = _write_images(tmp_path / "images", 12)
    reader = CameraReader(ImageFolderSource(tmp_path / "images"), queue_size=2)
    reader.start()
    frames = _drain(reader)
    reader.stop()
    assert [f.name for f in frames] == names
    assert [int(f.image[0, 0, 0]) for f in frames] == list(range(12))
    assert reader.frames_dropped == 0


def test_image_folder_loops_when_asked(tmp_path: Path) -> None:
    names = _write_images(tmp_path / "images", 3)
    source = ImageFolderSource(tmp_path / "images", loop=True)
    source.open()
    read = [source.read() for _ in range(7)]
    assert [f.name for f in read if f] == (names * 3)[:7]


def test_video_file_delivers_every_frame(tmp_path: Path) -> None:
    path = tmp_path / "line.avi"
    write_video(path, [np.full((32, 32, 3), i * 8, np.uint8) for i in range(30)])
    reader = CameraReader(VideoCaptureSource(str(path), live=False), queue_size=1)
    reader.start()
    frames = _drain(reader)
    reader.stop()
    assert [f.index for f in frames] == list(range(30))
    assert reader.frames_dropped == 0


def test_live_source_drops_oldest_and_counts(tmp_path: Path) -> None:
    metrics = NodeMetrics()
    camera = BurstCamera(50)
    reader = CameraReader(camera, queue_size=2, metrics=metrics)
    reader.start()
    assert camera.exhausted.wait(10.0)
    assert reader.frames_read == 50
    assert reader.frames_dropped == 48
    kept = [reader.get(1.0), reader.get(1.0)]
    assert [f.index for f in kept if f] == [48, 49]  # the latest frames win
    reader.stop(timeout_s=0.1)
    camera.release.set()
    reader.stop()
    text = metrics.render().decode()
    assert "linewatch_frames_dropped_total 48.0" in text
    assert "linewatch_frames_in_total 50.0" in text


def test_source_that_does_not_open_is_retried_with_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = NodeMetrics()
    source = open_source(str(tmp_path / "missing.avi"))
    reader = CameraReader(source, backoff=Backoff(0.01, 0.04), metrics=metrics)
    with caplog.at_level(logging.WARNING, logger="edge.camera"):
        reader.start()
        wait_until(lambda: reader.open_failures >= 4, what="four failed opens")
        reader.stop()
    assert not reader.connected
    assert "camera unavailable, retrying" in caplog.text
    assert "missing.avi" in caplog.text
    assert "linewatch_camera_connected 0.0" in metrics.render().decode()


def test_backoff_doubles_up_to_the_cap() -> None:
    delays = Backoff(0.5, 3.0).delays()
    assert [next(delays) for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize(
    ("spec", "kind", "live"),
    [
        ("0", VideoCaptureSource, True),
        ("rtsp://10.0.0.7/stream1", VideoCaptureSource, True),
        ("http://127.0.0.1:1/mjpg", VideoCaptureSource, True),
        ("line3.mp4", VideoCaptureSource, False),
    ],
)
def test_open_source_picks_the_kind(spec: str, kind: type, live: bool) -> None:
    source = open_source(spec)
    assert isinstance(source, kind)
    assert source.live is live


def test_open_source_folder(tmp_path: Path) -> None:
    source = open_source(str(tmp_path))
    assert isinstance(source, ImageFolderSource)
    assert not source.live

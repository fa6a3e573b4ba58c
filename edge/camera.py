"""Camera sources and the reader thread that keeps the newest frames.

A source is whatever OpenCV opens: a video file, a folder of images (read in
name order), an RTSP/HTTP URL or a USB camera index. Two rules follow from
"runs for months untouched":

* A live source never waits for us: when inference is slower than the camera,
  the oldest queued frame is dropped and counted (memory stays bounded).
  A file source is never dropped from: the reader waits for the loop instead.
* A source that will not open, or goes away, is retried with exponential
  backoff, logged, and shown in the metrics; nothing else stops.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2

from edge.inspector import now_ms
from edge.metrics import NodeMetrics
from edge.runtime.errors import CameraError, ImageDecodeError
from edge.runtime.imaging import ImageArray, read_image, to_bgr

__all__ = [
    "IMAGE_SUFFIXES",
    "Backoff",
    "CameraFrame",
    "CameraReader",
    "FrameSource",
    "ImageFolderSource",
    "VideoCaptureSource",
    "open_source",
]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


@dataclass(frozen=True)
class CameraFrame:
    """One frame as a source delivered it."""

    image: ImageArray
    captured_at_ms: int
    index: int  # position in the source since it was opened
    name: str = ""  # file name for folder sources


class FrameSource(Protocol):
    """Where frames come from; ``live`` sources may be dropped from, files may not."""

    live: bool
    description: str

    def open(self) -> None:
        """Open or reopen the source. Raises CameraError when it cannot."""
        ...

    def read(self) -> CameraFrame | None:
        """Next frame; None at the end of a file source. Raises CameraError if lost."""
        ...

    def close(self) -> None:
        """Release the device or file."""
        ...


class ImageFolderSource:
    """Every image of a folder once, in name order (forever with ``loop``)."""

    live = False

    def __init__(self, folder: Path, *, loop: bool = False) -> None:
        self.folder = folder
        self.loop = loop
        self.description = f"folder {folder}"
        self._files: list[Path] = []
        self._iterator: Iterator[Path] = iter(())
        self._index = 0

    def open(self) -> None:
        """List the images now (files added later are seen on the next pass)."""
        if not self.folder.is_dir():
            msg = f"camera {self.folder}: no such folder"
            raise CameraError(msg)
        self._files = sorted(
            path for path in self.folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES
        )
        if not self._files:
            msg = f"camera {self.folder}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})"
            raise CameraError(msg)
        self._iterator = iter(self._files)
        self._index = 0

    def read(self) -> CameraFrame | None:
        """Read the next image; an unreadable file is logged and skipped."""
        while True:
            path = next(self._iterator, None)
            if path is None:
                if not self.loop:
                    return None
                self._iterator = iter(self._files)
                continue
            try:
                image = read_image(path)
            except ImageDecodeError as exc:
                logger.warning("camera skipped a file source=%s reason=%s", self.folder, exc)
                continue
            frame = CameraFrame(image, now_ms(), self._index, path.name)
            self._index += 1
            return frame

    def close(self) -> None:
        """Nothing to release."""
        self._iterator = iter(())


class VideoCaptureSource:
    """A video file, stream URL or USB index, read with OpenCV."""

    def __init__(self, target: str | int, *, live: bool, loop: bool = False) -> None:
        self.target = target
        self.live = live
        self.loop = loop and not live
        self.description = f"usb {target}" if isinstance(target, int) else str(target)
        self._capture: cv2.VideoCapture | None = None
        self._index = 0

    def open(self) -> None:
        """Open the capture; raises CameraError when OpenCV cannot."""
        self.close()
        capture = cv2.VideoCapture(self.target)
        if not capture.isOpened():
            capture.release()
            msg = f"camera {self.description}: OpenCV cannot open it; check the path, URL or index"
            raise CameraError(msg)
        self._capture = capture
        self._index = 0

    def read(self) -> CameraFrame | None:
        """Read one frame; the end of a file is None, the end of a stream is an error."""
        if self._capture is None:
            msg = f"camera {self.description}: read before open"
            raise CameraError(msg)
        ok, image = self._capture.read()
        if not ok and self.loop and self._index > 0:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._capture.read()
        if not ok or image is None:
            if self.live:
                msg = f"camera {self.description}: no frame (stream lost)"
                raise CameraError(msg)
            return None
        frame = CameraFrame(to_bgr(image), now_ms(), self._index)
        self._index += 1
        return frame

    def close(self) -> None:
        """Release the capture."""
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def open_source(spec: str, *, loop: bool = False) -> FrameSource:
    """Pick the source for a ``--camera`` value (nothing is opened yet).

    A digit string is a USB index, ``scheme://`` a stream, an existing folder an
    image folder, anything else a video file (retried until it exists).
    """
    if spec.isdigit():
        return VideoCaptureSource(int(spec), live=True)
    if "://" in spec:
        return VideoCaptureSource(spec, live=True)
    path = Path(spec).expanduser()
    if path.is_dir():
        return ImageFolderSource(path, loop=loop)
    return VideoCaptureSource(str(path), live=False, loop=loop)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff between reconnect attempts."""

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0

    def delays(self) -> Iterator[float]:
        """Yield initial, initial x factor, … capped at ``max_s``."""
        delay = self.initial_s
        while True:
            yield delay
            delay = min(delay * self.factor, self.max_s)


class CameraReader:
    """Reads a source in a thread into a small queue the camera loop takes from."""

    def __init__(
        self,
        source: FrameSource,
        *,
        queue_size: int = 2,
        backoff: Backoff | None = None,
        metrics: NodeMetrics | None = None,
    ) -> None:
        self.source = source
        self.queue_size = queue_size
        self.backoff = backoff or Backoff()
        self.metrics = metrics
        self.frames_read = 0
        self.frames_dropped = 0
        self.open_failures = 0
        self.connected = False
        self._queue: collections.deque[CameraFrame] = collections.deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._ended = False
        self._thread = threading.Thread(target=self._run, name="camera-reader", daemon=True)

    def start(self) -> None:
        """Start reading."""
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop reading and release the source."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)

    @property
    def finished(self) -> bool:
        """True when a file source has ended and every frame was taken."""
        with self._cond:
            return self._ended and not self._queue

    def get(self, timeout_s: float) -> CameraFrame | None:
        """Take the oldest queued frame, or None after ``timeout_s`` or at the end."""
        with self._cond:
            if not self._cond.wait_for(
                lambda: bool(self._queue) or self._ended or self._stop.is_set(), timeout=timeout_s
            ):
                return None
            if not self._queue:
                return None
            frame = self._queue.popleft()
            self._cond.notify_all()  # a file reader may be waiting for room
            return frame

    def _put(self, frame: CameraFrame) -> None:
        with self._cond:
            if self.source.live:
                if len(self._queue) >= self.queue_size:
                    self._queue.popleft()  # latest frame wins: drop the oldest
                    self.frames_dropped += 1
                    if self.metrics:
                        self.metrics.frames_dropped.inc()
            else:
                self._cond.wait_for(
                    lambda: len(self._queue) < self.queue_size or self._stop.is_set()
                )
                if self._stop.is_set():
                    return
            self._queue.append(frame)
            self.frames_read += 1
            if self.metrics:
                self.metrics.frames_in.inc()
            self._cond.notify_all()

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        if self.metrics:
            self.metrics.camera_connected.set(1 if connected else 0)

    def _run(self) -> None:
        delays = self.backoff.delays()
        while not self._stop.is_set():
            try:
                self.source.open()
            except CameraError as exc:
                self.open_failures += 1
                delay = next(delays)
                self._note_retry(exc, delay)
                self._stop.wait(delay)
                continue
            self._set_connected(True)
            logger.info("camera connected source=%s", self.source.description)
            read_before = self.frames_read
            try:
                if self._pump():
                    self._end()
                    return
            except CameraError as exc:
                if self.frames_read > read_before:  # it worked for a while: start over
                    delays = self.backoff.delays()
                delay = next(delays)
                self._note_retry(exc, delay)
                self._stop.wait(delay)
            finally:
                self.source.close()
                self._set_connected(False)

    def _pump(self) -> bool:
        """Move frames into the queue; True at the end of a file source."""
        while not self._stop.is_set():
            frame = self.source.read()
            if frame is None:
                return True
            self._put(frame)
        return False

    def _note_retry(self, exc: CameraError, delay_s: float) -> None:
        self._set_connected(False)
        if self.metrics:
            self.metrics.camera_reconnects.inc()
        logger.warning(
            "camera unavailable, retrying source=%s retry_in_s=%.1f attempt=%d reason=%s",
            self.source.description,
            delay_s,
            self.open_failures,
            exc,
        )

    def _end(self) -> None:
        logger.info(
            "camera source ended source=%s frames=%d", self.source.description, self.frames_read
        )
        with self._cond:
            self._ended = True
            self._cond.notify_all()

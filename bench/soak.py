"""Soak: one node at camera rate for a long time; memory, open files and threads must stay flat.

Usage::

    python bench/soak.py [--minutes 60] [--fps 25] [--grpc-fps 10] [--sample-s 5] [--bundle DIR]

The node runs in this process with a paced synthetic camera (``--fps`` frames
a second of a few 256x256 images, alternating normal and abnormal so the local
record writes too) and, from a separate client process, ``--grpc-fps`` unary
calls a second plus a short ``InspectStream`` every few seconds (so per-call
and per-stream threads and sockets are exercised). Every ``--sample-s`` seconds
it samples this process's RSS, open file descriptors and OS threads, then
prints first/last/max of each after the warm-up and a flat-or-not verdict.
Without ``--bundle`` the tiny test bundle is used.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "proto")]

from edge.camera import CameraFrame  # noqa: E402
from edge.inspector import now_ms  # noqa: E402
from edge.node import EdgeNode  # noqa: E402
from edge.settings import EdgeSettings  # noqa: E402

__all__ = ["PacedSource", "Sample", "Tolerance", "flatness", "sample_process", "sampling"]


class PacedSource:
    """A live camera of synthetic frames at ``fps``: what a line camera looks like to a node."""

    live = True
    description = "paced synthetic camera"

    def __init__(self, fps: float, side: int = 256, *, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        normal = [rng.integers(120, 136, (side, side, 3), dtype=np.uint8) for _ in range(3)]
        abnormal = np.full((side, side, 3), 255, dtype=np.uint8)
        self.frames = [*normal, abnormal]
        self.period_s = 1.0 / fps
        self.index = 0
        self._start = time.monotonic()
        self._closed = threading.Event()

    def open(self) -> None:
        self._start = time.monotonic() - self.index * self.period_s
        self._closed.clear()

    def read(self) -> CameraFrame | None:
        due = self._start + self.index * self.period_s
        delay = due - time.monotonic()
        if delay > 0 and self._closed.wait(delay):  # the camera's own pace, not a wait on us
            return None
        image = self.frames[self.index % len(self.frames)]
        frame = CameraFrame(image, now_ms(), self.index)
        self.index += 1
        return frame

    def close(self) -> None:
        self._closed.set()


@dataclass(frozen=True)
class Sample:
    """This process at one moment."""

    at_s: float
    rss_mb: float
    open_fds: int
    threads: int


def sample_process(started: float) -> Sample:
    """RSS, open file descriptors and OS threads of this process (Linux ``/proc``)."""
    rss_mb, threads = float("nan"), -1
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_mb = int(line.split()[1]) / 1024.0
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return Sample(time.monotonic() - started, rss_mb, len(os.listdir("/proc/self/fd")), threads)


@dataclass(frozen=True)
class Tolerance:
    """How much growth still counts as flat, from the first to the last part of the run."""

    rss_mb: float = 24.0
    open_fds: int = 4
    threads: int = 4


def flatness(samples: list[Sample], tolerance: Tolerance) -> dict[str, tuple[float, bool]]:
    """Growth of each figure (median of the last third minus the first third) and whether flat.

    Medians of thirds, not single samples, so one sample taken during a burst
    (a gRPC call's thread, an arena that grows and is given back) does not decide.
    """
    third = max(1, len(samples) // 3)
    first, last = samples[:third], samples[-third:]
    verdict = {}
    for name, limit in (
        ("rss_mb", tolerance.rss_mb),
        ("open_fds", tolerance.open_fds),
        ("threads", tolerance.threads),
    ):
        growth = statistics.median(getattr(s, name) for s in last) - statistics.median(
            getattr(s, name) for s in first
        )
        verdict[name] = (growth, growth <= limit)
    return verdict


def sampling(
    every_s: float, stop: threading.Event, on_sample: Callable[[Sample], None]
) -> threading.Thread:
    """A thread that samples this process every ``every_s`` until ``stop`` is set."""
    started = time.monotonic()

    def run() -> None:
        while not stop.wait(every_s):
            on_sample(sample_process(started))

    thread = threading.Thread(target=run, name="soak-sampler", daemon=True)
    thread.start()
    return thread


def _client(port: int, fps: float, stop: EventType) -> None:
    """In a separate process: unary calls at ``fps`` and a short stream every 5 seconds."""
    import cv2
    import grpc
    from linewatch.v1 import inspection_pb2, inspection_pb2_grpc

    ok, data = cv2.imencode(".png", np.full((256, 256, 3), 128, np.uint8))
    assert ok
    request = inspection_pb2.InspectRequest(encoded=data.tobytes())
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = inspection_pb2_grpc.InspectionServiceStub(channel)
        period, due, calls = 1.0 / fps, time.monotonic(), 0
        while not stop.is_set():
            stub.Inspect(request, timeout=30)
            calls += 1
            if calls % max(1, int(5 * fps)) == 0:
                stream: Iterator[inspection_pb2.InspectRequest] = iter([request] * 8)
                assert len(list(stub.InspectStream(stream, timeout=30))) == 8
            due += period
            stop.wait(max(0.0, due - time.monotonic()))  # pacing the client


def _print(samples: list[Sample], warmup: int, tolerance: Tolerance) -> bool:
    kept = samples[warmup:]
    print(f"{len(samples)} samples, the first {warmup} are warm-up and left out")
    print(f"{'':<10} {'first':>9} {'last':>9} {'max':>9} {'growth':>9}  flat")
    verdict = flatness(kept, tolerance)
    for name in ("rss_mb", "open_fds", "threads"):
        values = [getattr(s, name) for s in kept]
        growth, flat = verdict[name]
        print(
            f"{name:<10} {values[0]:>9.1f} {values[-1]:>9.1f} {max(values):>9.1f} "
            f"{growth:>+9.1f}  {'yes' if flat else 'NO'}"
        )
    steady = all(flat for _, flat in verdict.values())
    print(f"verdict: {'flat' if steady else 'NOT flat'} (tolerance {tolerance})")
    return steady


def main() -> None:
    """Run the soak and print the table and the verdict; exit 1 when not flat."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--fps", type=float, default=25.0, help="camera frames a second")
    parser.add_argument("--grpc-fps", type=float, default=10.0, help="unary calls a second")
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--warmup-s", type=float, default=30.0)
    parser.add_argument("--bundle", type=Path)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="linewatch-soak-"))
    if args.bundle is None:
        from tests.tiny_bundle import make_tiny_bundle

        bundle_dir = make_tiny_bundle(work / "tiny-bundle").directory
    else:
        bundle_dir = args.bundle
    settings = EdgeSettings(grpc="127.0.0.1:0", record_dir=work / "record", intra_op_threads=1)
    node = EdgeNode(settings, source=PacedSource(args.fps))
    node.load(bundle_dir)
    port = node.start()
    samples: list[Sample] = []
    stop, client_stop = threading.Event(), mp.get_context("spawn").Event()
    client = mp.get_context("spawn").Process(
        target=_client, args=(port, args.grpc_fps, client_stop)
    )
    client.start()
    sampler = sampling(args.sample_s, stop, samples.append)
    print(f"soaking {args.minutes} min: camera {args.fps} fps, gRPC {args.grpc_fps}/s, port {port}")
    stop.wait(args.minutes * 60.0)
    stop.set()
    sampler.join()
    client_stop.set()
    client.join(30)
    assert node.camera is not None
    processed = node.camera.processed
    node.stop(grace_s=2.0)
    grpc_frames = node.metrics.total("linewatch_frames_processed") - processed
    print(f"camera frames inspected {processed}, gRPC frames {grpc_frames:.0f}")
    warmup = min(len(samples) - 3, int(args.warmup_s / args.sample_s))
    sys.exit(0 if _print(samples, max(0, warmup), Tolerance()) else 1)


if __name__ == "__main__":
    main()

"""A short soak: a node at camera rate plus gRPC traffic keeps memory, files and threads flat.

The hour-long version is ``bench/soak.py``; this one runs ~25 s of frames (50
frames/s from a paced camera, unary calls and a short stream every second) and
compares the first and last thirds of the samples taken after a warm-up.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
import pytest
from linewatch.v1 import inspection_pb2, inspection_pb2_grpc

from bench.soak import PacedSource, Sample, Tolerance, flatness, sampling
from edge.node import EdgeNode
from edge.runtime.bundle import ModelBundle
from edge.settings import EdgeSettings
from tests.plugins.edge import NORMAL_GREY, encode_png, grey_image, wait_until

pytestmark = pytest.mark.integration

_FPS = 50.0
_WARMUP_FRAMES = 250  # 5 s: arenas, gRPC pools and the record reach their size
_SOAK_FRAMES = 1_250  # 25 s in all


def _client(port: int, stop: threading.Event) -> None:
    """Ten unary calls, then a stream of eight, about every second, until stopped."""
    request = inspection_pb2.InspectRequest(encoded=encode_png(grey_image(NORMAL_GREY)))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = inspection_pb2_grpc.InspectionServiceStub(channel)
        while not stop.wait(0.9):  # the client's pace, not a wait for a result
            for _ in range(10):
                stub.Inspect(request, timeout=10.0)
            stream: Iterator[inspection_pb2.InspectRequest] = iter([request] * 8)
            assert len(list(stub.InspectStream(stream, timeout=10.0))) == 8


def test_memory_files_and_threads_stay_flat(
    edge_settings: EdgeSettings, tiny_bundle: ModelBundle
) -> None:
    node = EdgeNode(edge_settings, source=PacedSource(_FPS, side=128))
    node.load(tiny_bundle)
    port = node.start()
    assert node.camera is not None
    camera = node.camera
    stop = threading.Event()
    client = threading.Thread(target=_client, args=(port, stop), name="soak-client")
    samples: list[Sample] = []
    try:
        client.start()
        wait_until(lambda: camera.processed >= _WARMUP_FRAMES, 30.0, "the warm-up frames")
        sampler = sampling(0.5, stop, samples.append)
        wait_until(lambda: camera.processed >= _SOAK_FRAMES, 90.0, "the soak frames")
    finally:
        stop.set()
        client.join(30.0)
        node.stop(grace_s=2.0)
    sampler.join(5.0)
    assert not client.is_alive(), "the gRPC client did not finish"
    assert len(samples) >= 30
    verdict = flatness(samples, Tolerance(rss_mb=16.0, open_fds=2, threads=2))
    growing = {name: growth for name, (growth, flat) in verdict.items() if not flat}
    assert not growing, f"grew past tolerance: {growing}; samples {samples[0]} .. {samples[-1]}"
    assert node.metrics.total("linewatch_frames_processed") > _SOAK_FRAMES

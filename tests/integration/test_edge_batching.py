"""Micro-batching over real gRPC: concurrent callers share runs, each gets its own answer."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
import pytest
from linewatch.v1 import common_pb2, inspection_pb2, inspection_pb2_grpc

from edge.node import EdgeNode
from edge.runtime.bundle import ModelBundle
from edge.settings import EdgeSettings
from tests.plugins.edge import ABNORMAL_GREY, NORMAL_GREY, UNCERTAIN_GREY, encode_png, grey_image

pytestmark = pytest.mark.integration

_TIMEOUT_S = 10.0
_EXPECTED = {
    NORMAL_GREY: common_pb2.VERDICT_NORMAL,
    ABNORMAL_GREY: common_pb2.VERDICT_ABNORMAL,
    UNCERTAIN_GREY: common_pb2.VERDICT_UNCERTAIN,
}


@pytest.fixture
def batching_node(edge_settings: EdgeSettings, tiny_bundle: ModelBundle) -> Iterator[EdgeNode]:
    """One run slot, so concurrent frames must queue into batches of up to 4."""
    settings = edge_settings.model_copy(update={"batch_max": 4, "inference_workers": 1})
    node = EdgeNode(settings)
    node.start()
    node.load(tiny_bundle)
    yield node
    node.stop(grace_s=1.0)


def _batches(node: EdgeNode) -> tuple[float, float]:
    """(runs, frames) seen by the batch-size histogram."""
    registry = node.metrics.registry
    runs = registry.get_sample_value("linewatch_inference_batch_size_count") or 0.0
    frames = registry.get_sample_value("linewatch_inference_batch_size_sum") or 0.0
    return runs, frames


def test_concurrent_calls_share_runs_and_one_bad_frame_fails_alone(
    batching_node: EdgeNode,
) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{batching_node.port}")
    stub = inspection_pb2_grpc.InspectionServiceStub(channel)
    levels = [NORMAL_GREY, ABNORMAL_GREY, UNCERTAIN_GREY]
    results: dict[str, inspection_pb2.InspectResponse] = {}
    failures: dict[str, grpc.StatusCode] = {}
    lock = threading.Lock()

    def caller(index: int) -> None:
        for step in range(12):
            frame_id = f"c{index}-{step}"
            image = encode_png(grey_image(levels[(index + step) % 3]))
            data = b"not an image" if frame_id == "c3-5" else image
            try:
                response = stub.Inspect(
                    inspection_pb2.InspectRequest(encoded=data, frame_id=frame_id),
                    timeout=_TIMEOUT_S,
                )
            except grpc.RpcError as exc:
                with lock:
                    failures[frame_id] = exc.code()
                continue
            with lock:
                results[frame_id] = response

    callers = [threading.Thread(target=caller, args=(index,)) for index in range(8)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join(60.0)
    channel.close()

    assert failures == {"c3-5": grpc.StatusCode.INVALID_ARGUMENT}
    assert len(results) == 8 * 12 - 1
    for frame_id, response in results.items():
        index, step = (int(part) for part in frame_id[1:].split("-"))
        assert response.verdict == _EXPECTED[levels[(index + step) % 3]], frame_id
        assert response.latency_ms >= response.inference_ms > 0
    runs, frames = _batches(batching_node)
    assert frames == len(results)
    assert runs < frames, "eight callers on one run slot never shared a run"


def test_a_stream_window_is_batched_and_answered_in_order(batching_node: EdgeNode) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{batching_node.port}")
    stub = inspection_pb2_grpc.InspectionServiceStub(channel)
    levels = [NORMAL_GREY, ABNORMAL_GREY, UNCERTAIN_GREY] * 40
    requests = (
        inspection_pb2.InspectRequest(encoded=encode_png(grey_image(level)), frame_id=str(i))
        for i, level in enumerate(levels)
    )
    responses = list(stub.InspectStream(requests, timeout=_TIMEOUT_S))
    channel.close()
    assert [r.frame_id for r in responses] == [str(i) for i in range(len(levels))]
    assert [r.verdict for r in responses] == [_EXPECTED[level] for level in levels]
    assert all(r.latency_ms >= r.inference_ms > 0 for r in responses)
    runs, frames = _batches(batching_node)
    assert frames == len(levels)
    assert runs <= frames


def test_batching_off_runs_every_frame_alone(
    edge_settings: EdgeSettings, tiny_bundle: ModelBundle
) -> None:
    node = EdgeNode(edge_settings.model_copy(update={"batch_max": 1}))
    node.start()
    node.load(tiny_bundle)
    channel = grpc.insecure_channel(f"127.0.0.1:{node.port}")
    try:
        stub = inspection_pb2_grpc.InspectionServiceStub(channel)
        requests = (
            inspection_pb2.InspectRequest(encoded=encode_png(grey_image(NORMAL_GREY)))
            for _ in range(20)
        )
        assert len(list(stub.InspectStream(requests, timeout=_TIMEOUT_S))) == 20
        assert _batches(node) == (20.0, 20.0)
    finally:
        channel.close()
        node.stop(grace_s=1.0)

"""The node's gRPC server on loopback: verdicts, status codes, health, reflection, shutdown."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from linewatch.v1 import common_pb2, inspection_pb2, inspection_pb2_grpc

from edge.inspector import Inspector
from edge.model_slot import ModelSlot, activate_bundle
from edge.node import EdgeNode, engine_options
from edge.runtime.bundle import ModelBundle
from edge.server import SERVICE_NAME, build_server
from edge.settings import EdgeSettings
from tests.plugins.edge import (
    ABNORMAL_GREY,
    NORMAL_GREY,
    UNCERTAIN_GREY,
    GateSink,
    decode,
    encode_png,
    grey_image,
)

pytestmark = pytest.mark.integration

_TIMEOUT_S = 10.0


def _stub(channel: grpc.Channel) -> inspection_pb2_grpc.InspectionServiceStub:
    return inspection_pb2_grpc.InspectionServiceStub(channel)


def _health(channel: grpc.Channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service=service)
    return int(stub.Check(request, timeout=_TIMEOUT_S).status)


def _request(
    level: int, frame_id: str = "", *, maps: bool = False
) -> inspection_pb2.InspectRequest:
    return inspection_pb2.InspectRequest(
        encoded=encode_png(grey_image(level)),
        frame_id=frame_id,
        want_anomaly_map=maps,
        want_overlay=maps,
    )


def test_health_is_not_serving_until_a_model_is_warm(
    empty_node: EdgeNode, edge_channel: grpc.Channel, tiny_bundle: ModelBundle
) -> None:
    assert _health(edge_channel) == health_pb2.HealthCheckResponse.NOT_SERVING
    assert _health(edge_channel, SERVICE_NAME) == health_pb2.HealthCheckResponse.NOT_SERVING
    empty_node.load(tiny_bundle)
    assert _health(edge_channel) == health_pb2.HealthCheckResponse.SERVING
    assert _health(edge_channel, SERVICE_NAME) == health_pb2.HealthCheckResponse.SERVING


def test_no_model_is_failed_precondition(empty_node: EdgeNode, edge_channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _stub(edge_channel).Inspect(_request(NORMAL_GREY), timeout=_TIMEOUT_S)
    assert info.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "no model is loaded" in str(info.value.details())


@pytest.mark.parametrize(
    ("level", "verdict"),
    [
        (NORMAL_GREY, common_pb2.VERDICT_NORMAL),
        (UNCERTAIN_GREY, common_pb2.VERDICT_UNCERTAIN),
        (ABNORMAL_GREY, common_pb2.VERDICT_ABNORMAL),
    ],
)
def test_inspect_returns_a_full_verdict(
    edge_node: EdgeNode, edge_channel: grpc.Channel, level: int, verdict: int
) -> None:
    request = _request(level, "cam-07/1", maps=True)
    response = _stub(edge_channel).Inspect(request, timeout=_TIMEOUT_S)
    assert response.verdict == verdict
    assert response.frame_id == "cam-07/1"
    assert (response.threshold, response.uncertain_low) == (2.0, 1.5)
    assert (response.model.name, response.model.version) == ("tiny", "1")
    assert response.latency_ms >= response.inference_ms > 0
    anomaly_map = decode(response.anomaly_map_png)
    assert anomaly_map.shape == (64, 64) and anomaly_map.dtype == np.uint8
    overlay = decode(response.overlay_jpeg)
    assert overlay.shape == (64, 64, 3)


def test_maps_only_when_asked(edge_node: EdgeNode, edge_channel: grpc.Channel) -> None:
    response = _stub(edge_channel).Inspect(_request(NORMAL_GREY), timeout=_TIMEOUT_S)
    assert response.anomaly_map_png == b"" and response.overlay_jpeg == b""


def test_raw_pixels_are_inspected(edge_node: EdgeNode, edge_channel: grpc.Channel) -> None:
    raw = common_pb2.RawImage(height=20, width=30, channels=1, pixels=bytes([255]) * 600)
    response = _stub(edge_channel).Inspect(
        inspection_pb2.InspectRequest(raw=raw), timeout=_TIMEOUT_S
    )
    assert response.verdict == common_pb2.VERDICT_ABNORMAL


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (inspection_pb2.InspectRequest(encoded=b"GIF89a-but-not-really"), "not an image"),
        (inspection_pb2.InspectRequest(), "no image"),
        (
            inspection_pb2.InspectRequest(
                raw=common_pb2.RawImage(height=4, width=4, channels=3, pixels=b"\0" * 47)
            ),
            "47 pixel bytes, but 4x4x3 needs 48",
        ),
    ],
)
def test_bad_input_is_invalid_argument_naming_the_problem(
    edge_node: EdgeNode,
    edge_channel: grpc.Channel,
    request_: inspection_pb2.InspectRequest,
    message: str,
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _stub(edge_channel).Inspect(request_, timeout=_TIMEOUT_S)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert message in str(info.value.details())


def test_image_over_the_pixel_limit_is_resource_exhausted(
    edge_node: EdgeNode, edge_channel: grpc.Channel
) -> None:
    big = encode_png(grey_image(NORMAL_GREY, size=1100))  # 1.21 MP > 1 MP limit, small PNG
    with pytest.raises(grpc.RpcError) as info:
        _stub(edge_channel).Inspect(inspection_pb2.InspectRequest(encoded=big), timeout=_TIMEOUT_S)
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "over the limit" in str(info.value.details())


def test_message_over_the_size_limit_is_resource_exhausted(
    edge_node: EdgeNode, edge_channel: grpc.Channel
) -> None:
    too_big = inspection_pb2.InspectRequest(encoded=b"\0" * (5 * 1024 * 1024))  # limit 4 MiB
    with pytest.raises(grpc.RpcError) as info:
        _stub(edge_channel).Inspect(too_big, timeout=_TIMEOUT_S)
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_stream_answers_in_request_order(edge_node: EdgeNode, edge_channel: grpc.Channel) -> None:
    levels = [NORMAL_GREY, ABNORMAL_GREY, UNCERTAIN_GREY] * 20
    requests = (_request(level, frame_id=str(i)) for i, level in enumerate(levels))
    responses = list(_stub(edge_channel).InspectStream(requests, timeout=_TIMEOUT_S))
    assert [r.frame_id for r in responses] == [str(i) for i in range(len(levels))]
    expected = {
        NORMAL_GREY: common_pb2.VERDICT_NORMAL,
        ABNORMAL_GREY: common_pb2.VERDICT_ABNORMAL,
        UNCERTAIN_GREY: common_pb2.VERDICT_UNCERTAIN,
    }
    assert [r.verdict for r in responses] == [expected[level] for level in levels]


def test_stream_works_in_lock_step(edge_node: EdgeNode, edge_channel: grpc.Channel) -> None:
    """A client that waits for each answer before sending the next is not stuck."""
    outbox: list[inspection_pb2.InspectRequest | None] = []
    ready = threading.Condition()

    def requests() -> Iterator[inspection_pb2.InspectRequest]:
        while True:
            with ready:
                ready.wait_for(lambda: bool(outbox))
                item = outbox.pop(0)
            if item is None:
                return
            yield item

    def send(item: inspection_pb2.InspectRequest | None) -> None:
        with ready:
            outbox.append(item)
            ready.notify_all()

    responses = _stub(edge_channel).InspectStream(requests(), timeout=_TIMEOUT_S)
    for i in range(3):
        send(_request(NORMAL_GREY, frame_id=f"step-{i}"))
        assert next(responses).frame_id == f"step-{i}"
    send(None)
    assert list(responses) == []


def test_stream_error_ends_the_stream_with_the_status(
    edge_node: EdgeNode, edge_channel: grpc.Channel
) -> None:
    requests = [_request(NORMAL_GREY), inspection_pb2.InspectRequest(encoded=b"junk")]
    responses = _stub(edge_channel).InspectStream(iter(requests), timeout=_TIMEOUT_S)
    assert next(responses).verdict == common_pb2.VERDICT_NORMAL
    with pytest.raises(grpc.RpcError) as info:
        next(responses)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_get_model_info(edge_node: EdgeNode, edge_channel: grpc.Channel) -> None:
    info = _stub(edge_channel).GetModelInfo(
        inspection_pb2.GetModelInfoRequest(), timeout=_TIMEOUT_S
    )
    assert (info.model.name, info.input_height, info.input_width) == ("tiny", 64, 64)
    assert "CPUExecutionProvider" in info.providers
    assert info.threshold == 2.0


def test_reflection_lists_the_services(edge_node: EdgeNode, edge_channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(edge_channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    response = next(iter(stub.ServerReflectionInfo(iter([request]), timeout=_TIMEOUT_S)))
    names = {service.name for service in response.list_services_response.service}
    assert {SERVICE_NAME, "grpc.health.v1.Health"} <= names


def test_graceful_shutdown_finishes_the_request_in_flight(
    edge_settings: EdgeSettings, tiny_bundle: ModelBundle
) -> None:
    slot = ModelSlot()
    activate_bundle(slot, tiny_bundle, engine_options(edge_settings))
    gate = GateSink()  # holds the request inside the servicer until we open it
    server, port = build_server(Inspector(slot), edge_settings, sink=gate)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    watch = health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service=""), timeout=_TIMEOUT_S
    )
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    with ThreadPoolExecutor(2) as pool:
        in_flight = pool.submit(
            _stub(channel).Inspect, _request(NORMAL_GREY, frame_id="last"), timeout=_TIMEOUT_S
        )
        assert gate.entered.wait(_TIMEOUT_S)
        stopping = pool.submit(server.stop, 10.0)
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()  # an open watch would otherwise hold the server for the whole grace
        assert not in_flight.done()
        assert not stopping.done()
        gate.gate.set()
        assert in_flight.result(_TIMEOUT_S).frame_id == "last"
        stopping.result(_TIMEOUT_S)
    channel.close()


def test_model_swap_under_load_fails_no_request(
    edge_node: EdgeNode,
    edge_channel: grpc.Channel,
    tiny_bundle_factory: Callable[..., ModelBundle],
) -> None:
    bundles = [tiny_bundle_factory(version=str(v)) for v in (2, 3)]
    stub = _stub(edge_channel)
    stop = threading.Event()
    done = [0]

    def hammer() -> list[str]:
        versions = []
        while not stop.is_set():
            response = stub.Inspect(_request(ABNORMAL_GREY), timeout=_TIMEOUT_S)
            assert response.verdict == common_pb2.VERDICT_ABNORMAL
            versions.append(response.model.version)
            done[0] += 1
        return versions

    with ThreadPoolExecutor(3) as pool:
        clients = [pool.submit(hammer) for _ in range(3)]
        swaps = 0
        while swaps < 6 or done[0] < 300:
            edge_node.load(bundles[swaps % 2])
            swaps += 1
            assert not any(client.done() for client in clients), "a client failed"
        stop.set()
        seen = [version for client in clients for version in client.result(_TIMEOUT_S)]
    assert set(seen) == {"1", "2", "3"} or set(seen) == {"2", "3"}
    final = stub.Inspect(_request(NORMAL_GREY), timeout=_TIMEOUT_S)
    assert final.model.version == bundles[(swaps - 1) % 2].manifest.version


def test_idle_streams_cannot_starve_the_health_check(
    edge_settings: EdgeSettings, tiny_bundle: ModelBundle
) -> None:
    """Eight idle InspectStream calls once took every thread and the liveness probe timed out."""
    node = EdgeNode(edge_settings.model_copy(update={"grpc_workers": 8}))
    node.start()
    node.load(tiny_bundle)
    release = threading.Event()
    channel = grpc.insecure_channel(f"127.0.0.1:{node.port}")

    def idle() -> Iterator[inspection_pb2.InspectRequest]:
        release.wait(30.0)
        yield from ()

    calls = [_stub(channel).InspectStream(idle(), timeout=30.0) for _ in range(8)]
    try:
        refused = []
        for call in calls[5:]:  # 8 workers: 5 for inspections, 2 for pushes, 1 for health
            with pytest.raises(grpc.RpcError) as info:
                next(call)
            refused.append(info.value.code())
        assert refused == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 3
        health = health_pb2_grpc.HealthStub(channel)
        answer = health.Check(health_pb2.HealthCheckRequest(), timeout=2.0)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        release.set()
        for call in calls:
            call.cancel()
        channel.close()
        node.stop(grace_s=1.0)

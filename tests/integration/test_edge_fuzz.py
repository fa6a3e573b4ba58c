"""Random bytes and random raw shapes at Inspect: proper status codes, node stays healthy."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from linewatch.v1 import common_pb2, inspection_pb2, inspection_pb2_grpc

from edge.node import EdgeNode

pytestmark = pytest.mark.integration

_ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_FUZZ = settings(
    max_examples=60,
    database=None,  # write nothing into the working directory
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _call(channel: grpc.Channel, request: inspection_pb2.InspectRequest) -> grpc.StatusCode:
    stub = inspection_pb2_grpc.InspectionServiceStub(channel)
    try:
        stub.Inspect(request, timeout=10.0)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def _assert_serving(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    response = health.Check(health_pb2.HealthCheckRequest(), timeout=10.0)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


@_FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=2048),
        st.binary(max_size=512).map(lambda tail: _PNG_MAGIC + tail),
        st.binary(max_size=512).map(lambda tail: b"\xff\xd8\xff" + tail),  # JPEG start
    )
)
def test_random_bytes(edge_node: EdgeNode, edge_channel: grpc.Channel, data: bytes) -> None:
    code = _call(edge_channel, inspection_pb2.InspectRequest(encoded=data))
    assert code in _ALLOWED
    _assert_serving(edge_channel)


@_FUZZ
@given(
    height=st.integers(0, 2**32 - 1) | st.integers(0, 70),
    width=st.integers(0, 2**32 - 1) | st.integers(0, 70),
    channels=st.integers(0, 2**32 - 1) | st.integers(0, 5),
    pixels=st.binary(max_size=70 * 70 * 4),
    exact=st.booleans(),
)
def test_random_raw_shapes(
    edge_node: EdgeNode,
    edge_channel: grpc.Channel,
    height: int,
    width: int,
    channels: int,
    pixels: bytes,
    exact: bool,
) -> None:
    if exact and height * width * channels <= 70 * 70 * 4:
        pixels = bytes(height * width * channels)
    raw = common_pb2.RawImage(height=height, width=width, channels=channels, pixels=pixels)
    code = _call(edge_channel, inspection_pb2.InspectRequest(raw=raw))
    assert code in _ALLOWED
    _assert_serving(edge_channel)

"""ModelService on a real node over loopback: push, resume, refuse, activate, roll back, restart.

Every refusal is checked from the outside as a user relies on it: a status code
with a message, and the node still answering Inspect with its previous model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from linewatch.v1 import common_pb2, inspection_pb2, inspection_pb2_grpc, model_service_pb2
from linewatch.v1 import model_service_pb2_grpc as ms_grpc

from cloud.deploy.pusher import NodeClient, NodeRefused, PackedBundle, pack_bundle
from cloud.signing import KeyPair
from edge.node import EdgeNode
from edge.runtime.bundle import ModelBundle
from tests.plugins.deploy import start_node_process
from tests.plugins.edge import ABNORMAL_GREY, encode_png, grey_image, wait_until

pytestmark = pytest.mark.integration

_TIMEOUT_S = 10.0


def _pack(bundle: ModelBundle) -> PackedBundle:
    return pack_bundle(bundle.directory, bundle.directory.parent / f"{bundle.directory.name}.tar")


def _address(node: EdgeNode) -> str:
    return f"127.0.0.1:{node.port}"


def _deploy(node: EdgeNode | str, bundle: ModelBundle) -> None:
    address = node if isinstance(node, str) else _address(node)
    with NodeClient(address) as client:
        client.push(_pack(bundle))
        client.activate(bundle.manifest.name, bundle.manifest.version)


def _inspect_version(address: str) -> str:
    with grpc.insecure_channel(address) as channel:
        stub = inspection_pb2_grpc.InspectionServiceStub(channel)
        request = inspection_pb2.InspectRequest(encoded=encode_png(grey_image(ABNORMAL_GREY)))
        response = stub.Inspect(request, timeout=_TIMEOUT_S)
    assert response.verdict == common_pb2.VERDICT_ABNORMAL
    return str(response.model.version)


def _refused(node: EdgeNode, bundle: ModelBundle) -> NodeRefused:
    with pytest.raises(NodeRefused) as caught:
        _deploy(node, bundle)
    assert _inspect_version(_address(node)) == "1", "the old model must keep serving"
    return caught.value


@pytest.fixture
def serving_node(model_node: EdgeNode, bundle_maker: Callable[..., ModelBundle]) -> EdgeNode:
    """A node with ModelService running version 1, pushed and activated."""
    _deploy(model_node, bundle_maker(version="1"))
    return model_node


def test_push_and_activate_swaps_the_model(
    serving_node: EdgeNode, bundle_maker: Callable[..., ModelBundle]
) -> None:
    address = _address(serving_node)
    assert _inspect_version(address) == "1"

    _deploy(serving_node, bundle_maker(version="2"))

    assert _inspect_version(address) == "2"
    with NodeClient(address) as client:
        held = client.models()
    assert held.active == "tiny:2"
    assert [label for label, _ in held.bundles] == ["tiny:2", "tiny:1"]


def test_a_node_with_no_model_waits_for_a_push(
    model_node: EdgeNode, bundle_maker: Callable[..., ModelBundle]
) -> None:
    with grpc.insecure_channel(_address(model_node)) as channel:
        stub = inspection_pb2_grpc.InspectionServiceStub(channel)
        request = inspection_pb2.InspectRequest(encoded=encode_png(grey_image(ABNORMAL_GREY)))
        with pytest.raises(grpc.RpcError) as caught:
            stub.Inspect(request, timeout=_TIMEOUT_S)
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION

    _deploy(model_node, bundle_maker(version="1"))
    assert _inspect_version(_address(model_node)) == "1"


def test_streaming_inspection_across_a_swap_fails_no_frame(
    serving_node: EdgeNode, bundle_maker: Callable[..., ModelBundle]
) -> None:
    swapped = threading.Event()
    frame = encode_png(grey_image(ABNORMAL_GREY))

    def requests() -> Iterator[inspection_pb2.InspectRequest]:
        sent = sent_after_swap = 0
        while sent_after_swap < 60:  # enough frames after the swap for 20 in a row on v2
            sent += 1
            sent_after_swap += swapped.is_set()
            yield inspection_pb2.InspectRequest(encoded=frame, frame_id=str(sent))

    versions: list[str] = []

    def stream() -> None:
        with grpc.insecure_channel(_address(serving_node)) as channel:
            stub = inspection_pb2_grpc.InspectionServiceStub(channel)
            for response in stub.InspectStream(requests(), timeout=60.0):
                assert response.verdict == common_pb2.VERDICT_ABNORMAL
                versions.append(response.model.version)
                if swapped.is_set() and versions[-20:] == ["2"] * 20:
                    return

    reader = threading.Thread(target=stream)
    reader.start()
    wait_until(lambda: len(versions) >= 10, what="frames before the swap")
    _deploy(serving_node, bundle_maker(version="2"))
    swapped.set()
    reader.join(60.0)

    assert not reader.is_alive()
    first_new = versions.index("2")
    last_old = len(versions) - 1 - versions[::-1].index("1")
    # Frames already in flight (up to the stream window) may finish on the old model,
    # after the first answer from the new one; from then on, only the new model answers.
    assert set(versions[:first_new]) == {"1"}
    assert last_old - first_new < serving_node.settings.stream_window
    assert versions[-20:] == ["2"] * 20


def test_truncated_upload_resumes_from_upload_status(
    serving_node: EdgeNode, bundle_maker: Callable[..., ModelBundle]
) -> None:
    packed = _pack(bundle_maker(version="2"))
    data = packed.path.read_bytes()
    half = len(data) // 2
    chunks = [
        model_service_pb2.PushChunk(
            upload_id=packed.upload_id,
            offset=offset,
            data=data[offset : min(offset + 1000, half)],
            total_size=packed.size,
            sha256=packed.sha256,
        )
        for offset in range(0, half, 1000)
    ]
    with grpc.insecure_channel(_address(serving_node)) as channel:
        reply = ms_grpc.ModelServiceStub(channel).Push(iter(chunks), timeout=_TIMEOUT_S)
    assert not reply.complete and reply.received_bytes == half

    with NodeClient(_address(serving_node)) as client:
        assert client.received_bytes(packed.upload_id) == half
        pushed = client.push(packed)
        client.activate("tiny", "2")

    assert pushed.bytes_sent == packed.size - half
    assert _inspect_version(_address(serving_node)) == "2"


def test_corrupted_upload_is_data_loss(
    serving_node: EdgeNode, bundle_maker: Callable[..., ModelBundle]
) -> None:
    packed = _pack(bundle_maker(version="2"))
    data = bytearray(packed.path.read_bytes())
    data[-600] ^= 0xFF
    chunk = model_service_pb2.PushChunk(
        upload_id=packed.upload_id,
        offset=0,
        data=bytes(data),
        total_size=packed.size,
        sha256=packed.sha256,
    )
    with (
        grpc.insecure_channel(_address(serving_node)) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        ms_grpc.ModelServiceStub(channel).Push(iter([chunk]), timeout=_TIMEOUT_S)
    assert caught.value.code() is grpc.StatusCode.DATA_LOSS
    assert "push it again" in str(caught.value.details())
    assert _inspect_version(_address(serving_node)) == "1"


def test_unsigned_or_foreign_bundle_is_permission_denied(
    serving_node: EdgeNode, bundle_maker: Callable[..., ModelBundle]
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    unsigned = _refused(serving_node, bundle_maker(version="2", key=None))
    foreign = _refused(serving_node, bundle_maker(version="3", key=Ed25519PrivateKey.generate()))

    assert unsigned.code == foreign.code == "PERMISSION_DENIED"
    assert "unsigned" in str(unsigned) and "signed by key" in str(foreign)


def test_parity_failure_keeps_the_old_model(
    serving_node: EdgeNode, bundle_maker: Callable[..., ModelBundle]
) -> None:
    refused = _refused(serving_node, bundle_maker(version="2", score_offset=0.5))

    assert refused.code == "FAILED_PRECONDITION"
    assert "parity FAILED" in str(refused)


def test_bundle_without_golden_images_is_refused(
    serving_node: EdgeNode, bundle_maker: Callable[..., ModelBundle]
) -> None:
    refused = _refused(serving_node, bundle_maker(version="2", golden=False))

    assert refused.code == "FAILED_PRECONDITION"
    assert "no golden images" in str(refused)


def test_manifest_for_another_input_size_is_invalid(
    serving_node: EdgeNode, bundle_maker: Callable[..., ModelBundle]
) -> None:
    refused = _refused(serving_node, bundle_maker(version="2", manifest_size=48))

    assert refused.code == "INVALID_ARGUMENT"
    assert "48x48" in str(refused)


def test_full_model_dir_is_resource_exhausted(
    model_node_factory: Callable[..., EdgeNode], bundle_maker: Callable[..., ModelBundle]
) -> None:
    node = model_node_factory("small", model_dir_quota_mb=0.001)

    with pytest.raises(NodeRefused) as caught:
        _deploy(node, bundle_maker(version="1"))

    assert caught.value.code == "RESOURCE_EXHAUSTED"
    assert not node.slot.loaded


def test_rollback_restores_the_previous_bundle(
    serving_node: EdgeNode, bundle_maker: Callable[..., ModelBundle]
) -> None:
    _deploy(serving_node, bundle_maker(version="2"))

    with NodeClient(_address(serving_node)) as client:
        switched = client.rollback()
        assert (switched.active, switched.previous) == ("tiny:1", "tiny:2")
        assert _inspect_version(_address(serving_node)) == "1"
        with pytest.raises(NodeRefused, match="no earlier bundle") as caught:
            client.rollback()
    assert caught.value.code == "FAILED_PRECONDITION"


def test_node_process_restarts_with_the_active_model(
    tmp_path: Path, signing_pair: KeyPair, bundle_maker: Callable[..., ModelBundle]
) -> None:
    model_dir, record_dir = tmp_path / "models", tmp_path / "record"
    first = start_node_process(model_dir, signing_pair.public_key, record_dir)
    try:
        assert any("waiting for a push" in line for line in first.lines)
        _deploy(first.address, bundle_maker(version="1"))
        _deploy(first.address, bundle_maker(version="2"))
    finally:
        assert first.stop() == 0

    second = start_node_process(model_dir, signing_pair.public_key, record_dir)
    try:
        assert any("model tiny:2 restored" in line for line in second.lines), second.lines
        assert _inspect_version(second.address) == "2"
        with NodeClient(second.address) as client:
            assert client.rollback().active == "tiny:1"  # the history survived too
    finally:
        second.stop()


def test_upload_resumes_after_the_node_process_was_killed(
    tmp_path: Path, signing_pair: KeyPair, bundle_maker: Callable[..., ModelBundle]
) -> None:
    packed = _pack(bundle_maker(version="1"))
    data = packed.path.read_bytes()
    held = len(data) // 2
    model_dir, record_dir = tmp_path / "models", tmp_path / "record"
    first = start_node_process(model_dir, signing_pair.public_key, record_dir)
    chunk = model_service_pb2.PushChunk(
        upload_id=packed.upload_id,
        offset=0,
        data=data[:held],
        total_size=packed.size,
        sha256=packed.sha256,
    )
    with grpc.insecure_channel(first.address) as channel:
        ms_grpc.ModelServiceStub(channel).Push(iter([chunk]), timeout=_TIMEOUT_S)
    first.process.kill()  # no goodbye: the node dies mid-rollout
    first.stop()

    second = start_node_process(model_dir, signing_pair.public_key, record_dir)
    try:
        with NodeClient(second.address) as client:
            assert client.received_bytes(packed.upload_id) == held
            pushed = client.push(packed)
            client.activate("tiny", "1")
        assert pushed.bytes_sent == packed.size - held
        assert _inspect_version(second.address) == "1"
    finally:
        second.stop()


@pytest.mark.parametrize("intra_op_threads", [1, 2])
def test_the_swapped_in_model_serves_with_the_configured_threads(
    model_node_factory: Callable[..., EdgeNode],
    bundle_maker: Callable[..., ModelBundle],
    intra_op_threads: int,
) -> None:
    """Staging runs on one background thread; the live session still gets what was asked."""
    node = model_node_factory(intra_op_threads=intra_op_threads)
    _deploy(node, bundle_maker(version="1"))
    assert node.slot.current().engine.options.intra_op_threads == intra_op_threads
    assert _inspect_version(_address(node)) == "1"

"""The node end to end in-process: camera loop, local record, metrics, reconnect."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from linewatch.v1 import common_pb2, inspection_pb2, inspection_pb2_grpc

from edge.camera import CameraReader
from edge.inspector import Inspector
from edge.model_slot import ModelSlot, activate_bundle
from edge.node import CameraLoop, EdgeNode
from edge.recorder import LocalRecord
from edge.runtime.bundle import ModelBundle
from edge.runtime.engine import EngineOptions
from edge.runtime.policy import Verdict
from edge.settings import EdgeSettings
from tests.plugins.edge import (
    ABNORMAL_GREY,
    NORMAL_GREY,
    UNCERTAIN_GREY,
    BurstCamera,
    GateSink,
    decode,
    encode_png,
    grey_image,
    wait_until,
    write_video,
)

pytestmark = pytest.mark.integration

_LEVELS = [NORMAL_GREY, UNCERTAIN_GREY, NORMAL_GREY, ABNORMAL_GREY, NORMAL_GREY, 0]
_EXPECTED = ["normal", "uncertain", "normal", "abnormal", "normal", "abnormal"]


def _settings(base: EdgeSettings, **changes: object) -> EdgeSettings:
    return base.model_copy(update=changes)


def _image_folder(folder: Path) -> Path:
    folder.mkdir()
    for i, level in enumerate(_LEVELS):
        cv2.imwrite(str(folder / f"frame-{i:02d}.png"), grey_image(level, size=96))
    return folder


def test_image_folder_each_image_once_in_order_flagged_kept(
    tmp_path: Path, edge_settings: EdgeSettings, tiny_bundle: ModelBundle
) -> None:
    folder = _image_folder(tmp_path / "images")
    node = EdgeNode(_settings(edge_settings, camera=str(folder)))
    node.start()
    node.load(tiny_bundle)
    assert node.camera is not None
    assert node.camera.finished.wait(10.0)
    assert node.dispatcher.drain(10.0)
    record = node.dispatcher.sinks[0]
    assert isinstance(record, LocalRecord)
    history = list(reversed(record.recent_verdicts(100)))
    assert [v.verdict.value for v in history] == _EXPECTED
    assert node.camera.processed == len(_LEVELS)
    assert node.camera.reader.frames_dropped == 0
    flagged = record.flagged_frames()
    assert [f.verdict for f in flagged] == [Verdict.UNCERTAIN, Verdict.ABNORMAL, Verdict.ABNORMAL]
    assert all(f.image_path.is_file() and f.anomaly_map_path.is_file() for f in flagged)
    node.stop(grace_s=1.0)


def test_video_file_every_frame_is_processed(
    tmp_path: Path, edge_settings: EdgeSettings, tiny_bundle: ModelBundle
) -> None:
    path = tmp_path / "line.avi"
    write_video(path, [grey_image(NORMAL_GREY, size=80)] * 40)
    node = EdgeNode(_settings(edge_settings, camera=str(path), camera_queue=1))
    node.load(tiny_bundle)
    node.start()
    assert node.camera is not None
    assert node.camera.finished.wait(10.0)
    assert node.camera.processed == 40
    assert b'linewatch_verdicts_total{source="camera",verdict="normal"} 40.0' in (
        node.metrics.render()
    )
    node.stop(grace_s=1.0)


def test_slow_inference_drops_oldest_live_frames_and_counts_them(
    tiny_bundle: ModelBundle,
) -> None:
    slot = ModelSlot()
    activate_bundle(slot, tiny_bundle, EngineOptions(intra_op_threads=1, warmup_runs=1))
    camera = BurstCamera(200)
    slow = GateSink()  # the loop is stuck until the camera has produced everything
    reader = CameraReader(camera, queue_size=2)
    loop = CameraLoop(reader, Inspector(slot), slow)
    loop.start()
    assert camera.exhausted.wait(10.0)
    slow.gate.set()
    wait_until(lambda: loop.processed + reader.frames_dropped == 200, what="all frames accounted")
    assert reader.frames_dropped >= 195
    assert [f.frame_id.rsplit("-", 1)[1] for f in slow.frames][-2:] == ["198", "199"]
    camera.release.set()
    loop.stop()


def test_camera_that_never_opens_is_retried_while_grpc_serves(
    tmp_path: Path, edge_settings: EdgeSettings, tiny_bundle: ModelBundle
) -> None:
    settings = _settings(
        edge_settings, camera=str(tmp_path / "no-such-video.mp4"), metrics="127.0.0.1:0"
    )
    node = EdgeNode(settings)
    node.start()
    node.load(tiny_bundle)
    assert node.camera is not None
    reader = node.camera.reader
    wait_until(lambda: reader.open_failures >= 3, what="three reconnect attempts")
    with grpc.insecure_channel(f"127.0.0.1:{node.port}") as channel:
        stub = inspection_pb2_grpc.InspectionServiceStub(channel)
        request = inspection_pb2.InspectRequest(encoded=encode_png(grey_image(ABNORMAL_GREY)))
        assert stub.Inspect(request, timeout=10.0).verdict == common_pb2.VERDICT_ABNORMAL
    assert node.metrics_server is not None
    url = f"http://127.0.0.1:{node.metrics_server.port}/metrics"
    with urllib.request.urlopen(url, timeout=10.0) as response:
        text = response.read().decode()
    assert "linewatch_camera_connected 0.0" in text
    assert "linewatch_camera_reconnects_total" in text
    assert 'linewatch_verdicts_total{source="grpc",verdict="abnormal"} 1.0' in text
    assert 'linewatch_model_info{name="tiny",providers="CPUExecutionProvider",version="1"} 1.0' in (
        text
    )
    assert "linewatch_inference_latency_seconds_bucket" in text
    assert "linewatch_frames_dropped_total 0.0" in text
    node.stop(grace_s=1.0)


def test_grpc_frames_reach_the_local_record(
    edge_node: EdgeNode, edge_channel: grpc.Channel
) -> None:
    stub = inspection_pb2_grpc.InspectionServiceStub(edge_channel)
    for level in (NORMAL_GREY, ABNORMAL_GREY):
        stub.Inspect(
            inspection_pb2.InspectRequest(encoded=encode_png(grey_image(level))), timeout=10.0
        )
    assert edge_node.dispatcher.drain(10.0)
    record = edge_node.dispatcher.sinks[0]
    assert isinstance(record, LocalRecord)
    assert [f.verdict for f in record.flagged_frames()] == [Verdict.ABNORMAL]
    assert np.array_equal(decode(record.flagged_frames()[0].image_path), grey_image(ABNORMAL_GREY))

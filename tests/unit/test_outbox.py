"""The durable outbox: order, durability across reopen, the quota and what it sheds."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from linewatch.v1 import common_pb2, messages_pb2

from edge.mqtt.messages import frame_messages
from edge.mqtt.outbox import Outbox, OutboxMessage, ShedRank
from edge.runtime.mqtt_link import NodeIdentity
from edge.runtime.policy import Verdict
from tests.plugins.mqtt import FrameFactory


def _message(msg_id: str, rank: ShedRank, size: int = 100, kind: str = "sample") -> OutboxMessage:
    return OutboxMessage(0, msg_id, kind, f"linewatch/s/l/n/{kind}", b"x" * size, rank)


def test_messages_come_back_oldest_first_and_survive_reopen(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, quota_bytes=10_000)
    seqs = outbox.put_many([_message(f"m{i}", ShedRank.NEVER, kind="alert") for i in range(3)])
    outbox.close()

    reopened = Outbox(tmp_path, quota_bytes=10_000)
    pending = reopened.pending(10)
    assert [m.msg_id for m in pending] == ["m0", "m1", "m2"]
    assert [m.seq for m in pending] == seqs
    assert reopened.pending(10, exclude=frozenset(seqs[:1]))[0].msg_id == "m1"
    assert reopened.delete(seqs[0]) is True
    assert reopened.delete(seqs[0]) is False
    counters = reopened.counters()
    assert (counters.enqueued, counters.delivered, counters.backlog) == (3, 1, 2)
    assert counters.backlog_bytes == 200


def test_over_quota_sheds_uncertain_first_then_abnormal_samples_never_alerts(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path, quota_bytes=450)
    outbox.put_many([_message("u1", ShedRank.UNCERTAIN_SAMPLE)])
    outbox.put_many([_message("a1", ShedRank.ABNORMAL_SAMPLE)])
    outbox.put_many([_message("u2", ShedRank.UNCERTAIN_SAMPLE)])
    outbox.put_many([_message("alert1", ShedRank.NEVER, kind="alert")])
    outbox.put_many([_message("u3", ShedRank.UNCERTAIN_SAMPLE)])  # 500 > 450: sheds u1
    assert [m.msg_id for m in outbox.pending(10)] == ["a1", "u2", "alert1", "u3"]

    outbox.put_many([_message(f"alert{i}", ShedRank.NEVER, kind="alert") for i in (2, 3, 4)])
    remaining = [m.msg_id for m in outbox.pending(10)]
    assert remaining == ["alert1", "alert2", "alert3", "alert4"]  # over quota, alerts kept
    counters = outbox.counters()
    assert counters.shed_uncertain == 3
    assert counters.shed_abnormal_samples == 1
    assert counters.backlog_bytes == 400


def test_abnormal_frame_gives_alert_then_sample_that_refer_to_each_other(
    make_frame: FrameFactory, node_identity: NodeIdentity
) -> None:
    frame = make_frame(Verdict.ABNORMAL)
    alert_message, sample_message = frame_messages(frame, node_identity)

    assert alert_message.topic == "linewatch/plant1/line2/cam3/alert"
    assert sample_message.topic == "linewatch/plant1/line2/cam3/sample"
    assert alert_message.shed_rank == ShedRank.NEVER
    assert sample_message.shed_rank == ShedRank.ABNORMAL_SAMPLE
    alert = messages_pb2.Alert.FromString(alert_message.payload)
    sample = messages_pb2.Sample.FromString(sample_message.payload)
    assert alert.sample_id == sample.id == sample_message.msg_id
    assert alert.id == alert_message.msg_id != sample.id
    assert alert.verdict == sample.verdict == common_pb2.VERDICT_ABNORMAL
    assert sample.captured_at_ms == frame.captured_at_ms
    image = cv2.imdecode(np.frombuffer(sample.image_png, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(image, frame.image)  # lossless
    assert cv2.imdecode(np.frombuffer(alert.thumbnail_jpeg, np.uint8), cv2.IMREAD_COLOR) is not None


def test_anomaly_map_png_spans_zero_to_twice_the_threshold(
    make_frame: FrameFactory, node_identity: NodeIdentity
) -> None:
    frame = make_frame(Verdict.UNCERTAIN)
    (only,) = frame_messages(frame, node_identity)
    sample = messages_pb2.Sample.FromString(only.payload)
    heat = cv2.imdecode(np.frombuffer(sample.anomaly_map_png, np.uint8), cv2.IMREAD_UNCHANGED)

    scaled = np.rint(frame.anomaly_map * (255.0 / (2 * frame.threshold)))
    expected = np.clip(scaled, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(heat, expected)
    assert only.shed_rank == ShedRank.UNCERTAIN_SAMPLE


def test_normal_frame_sends_nothing(make_frame: FrameFactory, node_identity: NodeIdentity) -> None:
    assert frame_messages(make_frame(Verdict.NORMAL), node_identity) == []

"""Checked protobuf messages → database records, with images put in the store first.

Images are written before the row that names them is committed, so a row
never points at a missing file; a resend finds the file already there.
"""

from __future__ import annotations

from datetime import datetime

from linewatch.v1 import messages_pb2

from cloud.collector.decode import Decoded, ms_to_datetime, verdict_name
from cloud.collector.store import BlobStore
from cloud.db.repository import AlertRecord, SampleRecord, StatusRecord

__all__ = ["to_record"]


def to_record(
    decoded: Decoded, received_at: datetime, store: BlobStore
) -> AlertRecord | SampleRecord | StatusRecord:
    """Return the record for one decoded message.

    Raises:
        StoreError: an image could not be written to the store.
    """
    message = decoded.message
    if isinstance(message, messages_pb2.Alert):
        return _alert(decoded, message, received_at, store)
    if isinstance(message, messages_pb2.Sample):
        return _sample(decoded, message, received_at, store)
    return _status(decoded, message, received_at)


def _alert(
    decoded: Decoded, message: messages_pb2.Alert, received_at: datetime, store: BlobStore
) -> AlertRecord:
    thumbnail = store.put(message.thumbnail_jpeg, ".jpg") if message.thumbnail_jpeg else None
    return AlertRecord(
        id=message.id,
        node=decoded.node,
        frame_id=message.frame_id,
        captured_at=ms_to_datetime(message.captured_at_ms),
        received_at=received_at,
        verdict=verdict_name(message.verdict),
        image_score=message.image_score,
        threshold=message.threshold,
        model_name=message.model.name,
        model_version=message.model.version,
        model_sha256=message.model.model_sha256,
        thumbnail_path=thumbnail.path if thumbnail else None,
        sample_id=message.sample_id or None,
    )


def _sample(
    decoded: Decoded, message: messages_pb2.Sample, received_at: datetime, store: BlobStore
) -> SampleRecord:
    image = store.put(message.image_png, ".png")
    heatmap = store.put(message.anomaly_map_png, ".png") if message.anomaly_map_png else None
    return SampleRecord(
        id=message.id,
        node=decoded.node,
        frame_id=message.frame_id,
        captured_at=ms_to_datetime(message.captured_at_ms),
        received_at=received_at,
        verdict=verdict_name(message.verdict),
        image_score=message.image_score,
        threshold=message.threshold,
        uncertain_low=message.uncertain_low,
        model_name=message.model.name,
        model_version=message.model.version,
        model_sha256=message.model.model_sha256,
        image_path=image.path,
        image_sha256=image.sha256,
        heatmap_path=heatmap.path if heatmap else None,
        heatmap_sha256=heatmap.sha256 if heatmap else None,
        extra=dict(message.metadata),
    )


def _status(
    decoded: Decoded, message: messages_pb2.NodeStatus, received_at: datetime
) -> StatusRecord:
    # A last will is stamped 0 when the node connects: it counts from its arrival.
    at = ms_to_datetime(message.sent_at_ms) if message.sent_at_ms else received_at
    return StatusRecord(
        node=decoded.node,
        online=message.state == messages_pb2.NodeStatus.STATE_ONLINE,
        at=at,
        grpc_address=message.grpc_address,
        model_name=message.model.name,
        model_version=message.model.version,
        frames_processed=message.frames_processed,
        outbox_backlog=message.outbox_backlog,
    )

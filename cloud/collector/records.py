"""Checked protobuf messages → the images they carry, then → database records.

The collector stores a batch's images first (``images_of``, then
``BlobStore.put_many``) and builds the records from where they landed
(``to_record``), so a row never points at a missing file; a resend finds the
file already there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from linewatch.v1 import messages_pb2

from cloud.collector.decode import Decoded, ms_to_datetime, verdict_name
from cloud.collector.store import StoredBlob
from cloud.db.repository import AlertRecord, SampleRecord, StatusRecord

__all__ = ["images_of", "to_record"]


def images_of(decoded: Decoded) -> list[tuple[bytes, str]]:
    """The ``(bytes, suffix)`` of the images a message carries, in the order ``to_record`` takes."""
    message = decoded.message
    if isinstance(message, messages_pb2.Alert):
        return [(message.thumbnail_jpeg, ".jpg")] if message.thumbnail_jpeg else []
    if isinstance(message, messages_pb2.Sample):
        images = [(message.image_png, ".png")]
        if message.anomaly_map_png:
            images.append((message.anomaly_map_png, ".png"))
        return images
    return []


def to_record(
    decoded: Decoded, received_at: datetime, stored: Sequence[StoredBlob] = ()
) -> AlertRecord | SampleRecord | StatusRecord:
    """Return the record for one decoded message whose images are already in the store.

    Args:
        decoded: a checked message.
        received_at: when the collector got it.
        stored: where ``images_of(decoded)`` landed, in that order.
    """
    message = decoded.message
    if isinstance(message, messages_pb2.Alert):
        return _alert(decoded, message, received_at, stored)
    if isinstance(message, messages_pb2.Sample):
        return _sample(decoded, message, received_at, stored)
    return _status(decoded, message, received_at)


def _alert(
    decoded: Decoded,
    message: messages_pb2.Alert,
    received_at: datetime,
    stored: Sequence[StoredBlob],
) -> AlertRecord:
    thumbnail = stored[0] if stored else None
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
    decoded: Decoded,
    message: messages_pb2.Sample,
    received_at: datetime,
    stored: Sequence[StoredBlob],
) -> SampleRecord:
    image = stored[0]
    heatmap = stored[1] if len(stored) > 1 else None
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

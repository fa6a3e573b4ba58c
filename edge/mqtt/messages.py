"""Inspected frames become the protobuf payloads of the MQTT contract.

An abnormal frame gives an ``Alert`` (small, with a thumbnail, so operators hear
at once) and a ``Sample`` (the lossless frame and its anomaly map, for the AI
team); an uncertain frame gives a ``Sample`` only; a normal frame gives nothing.
Every message carries a fresh UUID: the collector stores each id once.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from linewatch.v1 import common_pb2, messages_pb2

from edge.frames import Heartbeat, InspectedFrame, ModelIdentity
from edge.mqtt.outbox import OutboxMessage, ShedRank
from edge.runtime.errors import OutboxError
from edge.runtime.mqtt_link import MessageKind, NodeIdentity, topic_for
from edge.runtime.policy import Verdict
from edge.runtime.verdict_codes import verdict_to_proto
from edge.visualize import anomaly_map_to_u8, overlay_jpeg

__all__ = [
    "build_alert",
    "build_offline_status",
    "build_sample",
    "build_status",
    "frame_messages",
]

_THUMBNAIL_MAX_SIDE_PX = 256
_THUMBNAIL_JPEG_QUALITY = 80


def frame_messages(frame: InspectedFrame, identity: NodeIdentity) -> list[OutboxMessage]:
    """Return the messages one frame must send, alert first (``seq`` is assigned by the outbox)."""
    if frame.verdict == Verdict.NORMAL:
        return []
    sample = build_sample(frame, identity)
    abnormal = frame.verdict == Verdict.ABNORMAL
    sample_message = OutboxMessage(
        seq=0,
        msg_id=sample.id,
        kind=MessageKind.SAMPLE,
        topic=topic_for(identity, MessageKind.SAMPLE),
        payload=sample.SerializeToString(),
        shed_rank=ShedRank.ABNORMAL_SAMPLE if abnormal else ShedRank.UNCERTAIN_SAMPLE,
        created_at_ms=frame.captured_at_ms,
    )
    if not abnormal:
        return [sample_message]
    alert = build_alert(frame, identity, sample_id=sample.id)
    alert_message = OutboxMessage(
        seq=0,
        msg_id=alert.id,
        kind=MessageKind.ALERT,
        topic=topic_for(identity, MessageKind.ALERT),
        payload=alert.SerializeToString(),
        shed_rank=ShedRank.NEVER,
        created_at_ms=frame.captured_at_ms,
    )
    return [alert_message, sample_message]


def _judged_frame(frame: InspectedFrame, identity: NodeIdentity) -> dict[str, Any]:
    """The fields an alert and a sample share: a new id, who judged what, when, and how."""
    return {
        "id": str(uuid.uuid4()),
        "site": identity.site,
        "line": identity.line,
        "node": identity.node,
        "frame_id": frame.frame_id,
        "captured_at_ms": frame.captured_at_ms,
        "verdict": verdict_to_proto(frame.verdict),
        "image_score": frame.image_score,
        "threshold": frame.threshold,
        "model": _model_proto(frame.model),
    }


def build_sample(frame: InspectedFrame, identity: NodeIdentity) -> messages_pb2.Sample:
    """Return the ``Sample`` of a flagged frame: lossless image, 8-bit map, metadata."""
    height, width = frame.image.shape[:2]
    return messages_pb2.Sample(
        **_judged_frame(frame, identity),
        uncertain_low=frame.uncertain_low,
        image_png=_encode(".png", frame.image),
        anomaly_map_png=_encode(".png", anomaly_map_to_u8(frame.anomaly_map, frame.threshold)),
        metadata={
            "latency_ms": f"{frame.latency_ms:.3f}",
            "image_height": str(height),
            "image_width": str(width),
        },
    )


def build_alert(
    frame: InspectedFrame, identity: NodeIdentity, *, sample_id: str
) -> messages_pb2.Alert:
    """Return the ``Alert`` of an abnormal frame, with a small overlay thumbnail."""
    return messages_pb2.Alert(
        **_judged_frame(frame, identity),
        thumbnail_jpeg=overlay_jpeg(
            frame.image,
            frame.anomaly_map,
            frame.threshold,
            quality=_THUMBNAIL_JPEG_QUALITY,
            max_side=_THUMBNAIL_MAX_SIDE_PX,
        ),
        sample_id=sample_id,
    )


def build_status(
    identity: NodeIdentity,
    *,
    online: bool,
    grpc_address: str,
    heartbeat: Heartbeat,
    outbox_backlog: int = 0,
    sent_at_ms: int | None = None,
) -> messages_pb2.NodeStatus:
    """Return a status message; ``sent_at_ms=0`` (the last will) means "when it arrives".

    Args:
        identity: the node the status speaks for.
        online: ONLINE for a heartbeat, OFFLINE for a goodbye or the last will.
        grpc_address: where the cloud reaches the node.
        heartbeat: the node's counters and active model.
        outbox_backlog: messages waiting in the outbox.
        sent_at_ms: Unix epoch milliseconds; None means now.
    """
    state = (
        messages_pb2.NodeStatus.STATE_ONLINE if online else messages_pb2.NodeStatus.STATE_OFFLINE
    )
    return messages_pb2.NodeStatus(
        id=str(uuid.uuid4()),
        site=identity.site,
        line=identity.line,
        node=identity.node,
        state=state,
        sent_at_ms=int(time.time() * 1000) if sent_at_ms is None else sent_at_ms,
        model=_model_proto(heartbeat.model) if heartbeat.model is not None else None,
        grpc_address=grpc_address,
        frames_processed=max(0, heartbeat.frames_processed),
        frames_dropped=max(0, heartbeat.frames_dropped),
        outbox_backlog=max(0, outbox_backlog),
    )


def build_offline_status(identity: NodeIdentity, grpc_address: str) -> messages_pb2.NodeStatus:
    """Return the last-will payload: OFFLINE, stamped by the collector on arrival."""
    return build_status(
        identity, online=False, grpc_address=grpc_address, heartbeat=Heartbeat(), sent_at_ms=0
    )


def _model_proto(model: ModelIdentity) -> common_pb2.ModelRef:
    return common_pb2.ModelRef(
        name=model.name, version=model.version, model_sha256=model.model_sha256
    )


def _encode(
    extension: str, pixels: npt.NDArray[np.uint8], params: list[int] | None = None
) -> bytes:
    ok, buffer = cv2.imencode(extension, pixels, params or [])
    if not ok:
        msg = f"frame image {pixels.shape}: OpenCV cannot encode it as {extension}"
        raise OutboxError(msg)
    return bytes(buffer.tobytes())

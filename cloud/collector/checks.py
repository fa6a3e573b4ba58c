"""Bounds a message must keep to be stored: times, field lengths, numbers.

Whatever the database or Python would refuse later (a year past 9999, a string
longer than its column, a NaN score SQLite stores as NULL, a counter past
int64) is refused here with a reason, before it reaches a transaction; the
collector sets it aside as a dead letter. A timestamp from the future is
refused too, so a forged status cannot pin a node's row ahead of its real
heartbeats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from linewatch.v1 import messages_pb2

__all__ = ["MessageBounds", "problem_with"]

EARLIEST_MS = 946_684_800_000  # 2000-01-01T00:00:00Z: nothing older is a real frame
_INT64_MAX = 2**63 - 1
_MAX_METADATA_ENTRIES = 64
_MAX_METADATA_KEY_CHARS = 128
_MAX_METADATA_VALUE_CHARS = 1024

# Column widths of cloud.db.models; a longer value is refused, never truncated.
_ALERT_FIELDS = {"frame_id": 256, "sample_id": 64}
_SAMPLE_FIELDS = {"frame_id": 256}
_STATUS_FIELDS = {"grpc_address": 256}
_MODEL_FIELDS = {"name": 256, "version": 64, "model_sha256": 64}


@dataclass(frozen=True)
class MessageBounds:
    """How far a message's clock may run ahead of the collector's."""

    now_ms: int
    max_future_ms: int


def problem_with(
    message: messages_pb2.Alert | messages_pb2.Sample | messages_pb2.NodeStatus,
    bounds: MessageBounds,
) -> str:
    """Return why ``message`` cannot be stored, or ``""`` when it can.

    Args:
        message: a parsed alert, sample or status whose id and node were checked.
        bounds: the collector's clock and the skew it allows.

    Returns:
        A reason naming the field and its value, or an empty string.
    """
    if isinstance(message, messages_pb2.NodeStatus):
        return _status_problem(message, bounds)
    fields = _ALERT_FIELDS if isinstance(message, messages_pb2.Alert) else _SAMPLE_FIELDS
    problem = _time_problem("captured_at_ms", message.captured_at_ms, bounds)
    problem = problem or _length_problem(message, fields) or _model_problem(message.model)
    scores = ["image_score", "threshold"]
    if isinstance(message, messages_pb2.Sample):
        scores.append("uncertain_low")
        problem = problem or _metadata_problem(dict(message.metadata))
    for name in scores:
        value = float(getattr(message, name))
        if not problem and not math.isfinite(value):
            problem = f"{name} is {value}; scores must be finite"
    return problem


def _status_problem(message: messages_pb2.NodeStatus, bounds: MessageBounds) -> str:
    # A last will is stamped 0 when the node connects: it counts from its arrival.
    problem = _time_problem("sent_at_ms", message.sent_at_ms, bounds) if message.sent_at_ms else ""
    problem = problem or _length_problem(message, _STATUS_FIELDS) or _model_problem(message.model)
    for name in ("frames_processed", "frames_dropped", "outbox_backlog"):
        value = int(getattr(message, name))
        if not problem and value > _INT64_MAX:
            problem = f"{name} {value} is past int64"
    return problem


def _time_problem(name: str, epoch_ms: int, bounds: MessageBounds) -> str:
    latest_ms = bounds.now_ms + bounds.max_future_ms
    if epoch_ms < EARLIEST_MS:
        return f"{name} {epoch_ms} is before 2000-01-01; check the node's clock"
    if epoch_ms > latest_ms:
        ahead_s = (epoch_ms - bounds.now_ms) / 1000.0
        return (
            f"{name} {epoch_ms} is {ahead_s:.0f} s ahead of the collector's clock "
            f"(at most {bounds.max_future_ms / 1000.0:.0f} s allowed); check the node's clock"
        )
    return ""


def _length_problem(message: object, limits: dict[str, int]) -> str:
    for name, limit in limits.items():
        value = str(getattr(message, name))
        if len(value) > limit:
            return f"{name} has {len(value)} characters, more than {limit}"
    return ""


def _model_problem(model: object) -> str:
    problem = _length_problem(model, _MODEL_FIELDS)
    return f"model {problem}" if problem else ""


def _metadata_problem(metadata: dict[str, str]) -> str:
    if len(metadata) > _MAX_METADATA_ENTRIES:
        return f"metadata has {len(metadata)} entries, more than {_MAX_METADATA_ENTRIES}"
    for key, value in metadata.items():
        if len(key) > _MAX_METADATA_KEY_CHARS or len(value) > _MAX_METADATA_VALUE_CHARS:
            return (
                f"metadata entry {key[:32]!r} is longer than {_MAX_METADATA_KEY_CHARS} "
                f"(key) or {_MAX_METADATA_VALUE_CHARS} (value) characters"
            )
    return ""

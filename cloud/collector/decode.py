"""MQTT topic and protobuf payload → a checked message, or the reason it is malformed.

A payload that does not parse, lacks an id, or names another node than its topic
is rejected here; the collector logs it with its topic, counts it and moves on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.message import DecodeError, Message
from linewatch.v1 import common_pb2, messages_pb2

from cloud.db.repository import NodeKey

__all__ = [
    "TOPIC_FILTER",
    "Decoded",
    "Rejected",
    "decode",
    "ms_to_datetime",
    "verdict_name",
]

TOPIC_FILTER = "linewatch/+/+/+/+"
_MAX_ID_CHARS = 64
_VERDICT_NAMES: dict[int, str] = {
    common_pb2.VERDICT_NORMAL: "normal",
    common_pb2.VERDICT_UNCERTAIN: "uncertain",
    common_pb2.VERDICT_ABNORMAL: "abnormal",
}
_MESSAGE_TYPES: dict[str, type[Message]] = {
    "alert": messages_pb2.Alert,
    "sample": messages_pb2.Sample,
    "status": messages_pb2.NodeStatus,
}


@dataclass(frozen=True)
class Decoded:
    """A well-formed message and where it came from."""

    kind: str  # alert | sample | status
    node: NodeKey
    message: messages_pb2.Alert | messages_pb2.Sample | messages_pb2.NodeStatus


@dataclass(frozen=True)
class Rejected:
    """Why a message cannot be stored."""

    reason: str


def decode(topic: str, payload: bytes) -> Decoded | Rejected:
    """Parse and check one message from a ``linewatch/<site>/<line>/<node>/<kind>`` topic."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != "linewatch" or not all(parts[1:4]):
        return Rejected("topic is not linewatch/<site>/<line>/<node>/<kind>")
    kind = parts[4]
    message_type = _MESSAGE_TYPES.get(kind)
    if message_type is None:
        return Rejected(f"unknown message kind {kind!r}; expected alert, sample or status")
    try:
        message = message_type.FromString(payload)
    except DecodeError as exc:
        return Rejected(f"payload is not a {message_type.__name__} protobuf ({exc})")
    node = NodeKey(parts[1], parts[2], parts[3])
    problem = _problem(message, node)
    if problem:
        return Rejected(problem)
    return Decoded(kind, node, message)


def _problem(message: Message, node: NodeKey) -> str:
    message_id = getattr(message, "id", "")
    if not message_id or len(message_id) > _MAX_ID_CHARS:
        return f"message id {message_id!r} is empty or longer than {_MAX_ID_CHARS} characters"
    named = NodeKey(message.site, message.line, message.node)
    if named != node:
        return f"payload names node {named} but the topic names {node}"
    if isinstance(message, messages_pb2.NodeStatus):
        return ""
    if message.verdict not in _VERDICT_NAMES:
        return "verdict is unspecified"
    if not message.captured_at_ms:
        return "captured_at_ms is missing"
    if isinstance(message, messages_pb2.Sample) and not message.image_png:
        return "sample has no image_png"
    return ""


def verdict_name(verdict: int) -> str:
    """Return ``normal``, ``uncertain`` or ``abnormal`` for a protobuf verdict."""
    return _VERDICT_NAMES.get(verdict, "unspecified")


def ms_to_datetime(epoch_ms: int) -> datetime:
    """Unix epoch milliseconds → aware UTC datetime."""
    return datetime.fromtimestamp(epoch_ms / 1000.0, UTC)

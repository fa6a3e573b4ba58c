"""MQTT topic and protobuf payload → a checked message, or the reason it is malformed.

A payload that does not parse, lacks an id, names another node than its topic,
or breaks the bounds of ``checks`` (a time out of range, a field too long) is
rejected here with a reason; the collector sets it aside as a dead letter,
counts it, acknowledges it and moves on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.message import DecodeError, Message
from linewatch.v1 import messages_pb2

from cloud.collector.checks import MessageBounds, problem_with
from edge.runtime.mqtt_link import MessageKind, NodeIdentity, parse_topic
from edge.runtime.verdict_codes import verdict_from_proto

__all__ = ["Decoded", "Rejected", "decode", "ms_to_datetime", "verdict_name"]

_MAX_ID_CHARS = 64
DEFAULT_MAX_FUTURE_MS = 300_000  # five minutes of clock skew between a node and the collector
_MESSAGE_TYPES: dict[MessageKind, type[Message]] = {
    MessageKind.ALERT: messages_pb2.Alert,
    MessageKind.SAMPLE: messages_pb2.Sample,
    MessageKind.STATUS: messages_pb2.NodeStatus,
}


@dataclass(frozen=True)
class Decoded:
    """A well-formed message and where it came from."""

    kind: MessageKind
    node: NodeIdentity
    message: messages_pb2.Alert | messages_pb2.Sample | messages_pb2.NodeStatus


@dataclass(frozen=True)
class Rejected:
    """Why a message cannot be stored."""

    reason: str


def decode(
    topic: str,
    payload: bytes,
    *,
    now_ms: int | None = None,
    max_future_ms: int = DEFAULT_MAX_FUTURE_MS,
) -> Decoded | Rejected:
    """Parse and check one message from a ``linewatch/<site>/<line>/<node>/<kind>`` topic.

    Args:
        topic: where it was published.
        payload: the protobuf bytes.
        now_ms: the collector's clock (epoch ms); the current time when None.
        max_future_ms: how far ahead of ``now_ms`` a message's time may be.

    Returns:
        The checked message, or why it cannot be stored.
    """
    try:
        parsed = parse_topic(topic)
    except ValueError as exc:
        return Rejected(str(exc))
    message_type = _MESSAGE_TYPES[parsed.kind]
    try:
        message = message_type.FromString(payload)
    except DecodeError as exc:
        return Rejected(f"payload is not a {message_type.__name__} protobuf ({exc})")
    problem = _problem(message, parsed.node)
    if not problem:
        clock_ms = int(time.time() * 1000) if now_ms is None else now_ms
        problem = problem_with(message, MessageBounds(clock_ms, max_future_ms))
    if problem:
        return Rejected(problem)
    return Decoded(parsed.kind, parsed.node, message)


def _problem(message: Message, node: NodeIdentity) -> str:
    message_id = getattr(message, "id", "")
    if not message_id or len(message_id) > _MAX_ID_CHARS:
        return f"message id {message_id!r} is empty or longer than {_MAX_ID_CHARS} characters"
    named = NodeIdentity(message.site, message.line, message.node)
    if named != node:
        return f"payload names node {named} but the topic names {node}"
    if isinstance(message, messages_pb2.NodeStatus):
        return ""
    if verdict_from_proto(message.verdict) is None:
        return "verdict is unspecified"
    if not message.captured_at_ms:
        return "captured_at_ms is missing"
    if isinstance(message, messages_pb2.Sample) and not message.image_png:
        return "sample has no image_png"
    return ""


def verdict_name(verdict: int) -> str:
    """Return ``normal``, ``uncertain`` or ``abnormal`` for a protobuf verdict, as stored.

    ``decode`` refuses the rest; ``unspecified`` only names them should one get here.
    """
    known = verdict_from_proto(verdict)
    return known.value if known is not None else "unspecified"


def ms_to_datetime(epoch_ms: int) -> datetime:
    """Unix epoch milliseconds → aware UTC datetime."""
    return datetime.fromtimestamp(epoch_ms / 1000.0, UTC)

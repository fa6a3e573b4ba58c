"""The one mapping between a ``Verdict`` and its protobuf code.

The node's gRPC answers, the node's MQTT payloads and the collector's decoder all
speak ``linewatch.v1.Verdict``; they share this table so that a new verdict is
added in one place and cannot mean one thing on the wire and another in the
database. It lives apart from the MQTT link so the gRPC server does not load paho.
"""

from __future__ import annotations

from linewatch.v1 import common_pb2

from edge.runtime.policy import Verdict

__all__ = ["verdict_from_proto", "verdict_to_proto"]

_TO_PROTO: dict[Verdict, common_pb2.Verdict] = {
    Verdict.NORMAL: common_pb2.VERDICT_NORMAL,
    Verdict.UNCERTAIN: common_pb2.VERDICT_UNCERTAIN,
    Verdict.ABNORMAL: common_pb2.VERDICT_ABNORMAL,
}
_FROM_PROTO: dict[int, Verdict] = {code: verdict for verdict, code in _TO_PROTO.items()}


def verdict_to_proto(verdict: Verdict) -> common_pb2.Verdict:
    """Return the protobuf code a verdict travels as (gRPC answers, MQTT payloads).

    Args:
        verdict: what the node decided.

    Returns:
        ``VERDICT_NORMAL``, ``VERDICT_UNCERTAIN`` or ``VERDICT_ABNORMAL``.
    """
    return _TO_PROTO[verdict]


def verdict_from_proto(code: int) -> Verdict | None:
    """Return the verdict a protobuf code stands for, so a receiver can refuse the rest.

    Args:
        code: a ``linewatch.v1.Verdict`` value as received.

    Returns:
        The verdict, or None for ``VERDICT_UNSPECIFIED`` and codes this build does not know
        (a sender that forgot the field, or a newer sender).
    """
    return _FROM_PROTO.get(code)

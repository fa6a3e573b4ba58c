"""Bounds the collector holds a message to before it reaches a transaction."""

from __future__ import annotations

import pytest
from linewatch.v1 import common_pb2, messages_pb2

from cloud.collector.decode import Decoded, Rejected, decode

TOPIC = "linewatch/plant1/line2/cam3"
NOW_MS = 1_800_000_000_000


def _alert(**overrides: object) -> bytes:
    fields: dict[str, object] = {
        "id": "a-1",
        "site": "plant1",
        "line": "line2",
        "node": "cam3",
        "frame_id": "f-1",
        "captured_at_ms": NOW_MS - 1000,
        "verdict": common_pb2.VERDICT_ABNORMAL,
        "image_score": 4.0,
        "threshold": 3.0,
    }
    fields.update(overrides)
    return messages_pb2.Alert(**fields).SerializeToString()  # type: ignore[arg-type]


def _status(sent_at_ms: int, **overrides: object) -> bytes:
    return messages_pb2.NodeStatus(
        id="st-1",
        site="plant1",
        line="line2",
        node="cam3",
        state=messages_pb2.NodeStatus.STATE_ONLINE,
        sent_at_ms=sent_at_ms,
        **overrides,  # type: ignore[arg-type]
    ).SerializeToString()


def _decode(kind: str, payload: bytes) -> Decoded | Rejected:
    return decode(f"{TOPIC}/{kind}", payload, now_ms=NOW_MS, max_future_ms=300_000)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (_alert(captured_at_ms=2**62), "ahead of the collector's clock"),
        (_alert(captured_at_ms=NOW_MS + 301_000), "ahead of the collector's clock"),
        (_alert(captured_at_ms=900_000_000_000), "before 2000"),
        (_alert(frame_id="f" * 257), "frame_id has 257 characters"),
        (_alert(sample_id="s" * 65), "sample_id"),
        (_alert(image_score=float("nan")), "image_score is nan"),
        (_alert(threshold=float("inf")), "threshold is inf"),
        (_alert(model=common_pb2.ModelRef(name="m" * 300)), "model name"),
    ],
)
def test_an_alert_out_of_bounds_is_rejected_with_the_field_named(
    payload: bytes, reason: str
) -> None:
    rejected = _decode("alert", payload)
    assert isinstance(rejected, Rejected)
    assert reason in rejected.reason


def test_an_alert_within_the_allowed_skew_is_accepted() -> None:
    assert isinstance(_decode("alert", _alert(captured_at_ms=NOW_MS + 299_000)), Decoded)


def test_a_status_from_year_9999_is_rejected_and_a_last_will_is_not() -> None:
    rejected = _decode("status", _status(253_402_300_799_000))
    assert isinstance(rejected, Rejected)
    assert "sent_at_ms" in rejected.reason
    assert isinstance(_decode("status", _status(0)), Decoded)  # stamped on arrival
    assert isinstance(_decode("status", _status(NOW_MS)), Decoded)


def test_a_counter_past_int64_is_rejected() -> None:
    rejected = _decode("status", _status(NOW_MS, outbox_backlog=2**64 - 1))
    assert isinstance(rejected, Rejected)
    assert "outbox_backlog" in rejected.reason


def test_sample_metadata_is_bounded() -> None:
    sample = messages_pb2.Sample(
        id="s-1",
        site="plant1",
        line="line2",
        node="cam3",
        captured_at_ms=NOW_MS,
        verdict=common_pb2.VERDICT_UNCERTAIN,
        image_png=b"\x89PNG",
        metadata={f"k{i}": "v" for i in range(65)},
    ).SerializeToString()
    rejected = _decode("sample", sample)
    assert isinstance(rejected, Rejected)
    assert "metadata has 65 entries" in rejected.reason

"""What the collector accepts from a topic and what it rejects as malformed."""

from __future__ import annotations

import pytest
from linewatch.v1 import common_pb2, messages_pb2

from cloud.collector.decode import Decoded, Rejected, decode
from edge.runtime.mqtt_link import NodeIdentity

TOPIC = "linewatch/plant1/line2/cam3"


def _sample(**overrides: object) -> bytes:
    fields: dict[str, object] = {
        "id": "s-1",
        "site": "plant1",
        "line": "line2",
        "node": "cam3",
        "captured_at_ms": 1_700_000_000_000,
        "verdict": common_pb2.VERDICT_UNCERTAIN,
        "image_png": b"\x89PNG",
    }
    fields.update(overrides)
    return messages_pb2.Sample(**fields).SerializeToString()  # type: ignore[arg-type]


def test_a_good_sample_decodes_with_its_node() -> None:
    decoded = decode(f"{TOPIC}/sample", _sample())
    assert isinstance(decoded, Decoded)
    assert decoded.kind == "sample"
    assert decoded.node == NodeIdentity("plant1", "line2", "cam3")


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (f"{TOPIC}/sample", b"\xff\xff\xff garbage", "protobuf"),
        (f"{TOPIC}/sample", _sample(id=""), "message id"),
        (f"{TOPIC}/sample", _sample(node="cam4"), "names node"),
        (f"{TOPIC}/sample", _sample(image_png=b""), "image_png"),
        (f"{TOPIC}/sample", _sample(verdict=common_pb2.VERDICT_UNSPECIFIED), "verdict"),
        (f"{TOPIC}/heartbeat", _sample(), "unknown message kind"),
        ("linewatch/plant1/sample", _sample(), "topic"),
    ],
)
def test_malformed_messages_are_rejected_with_a_reason(
    topic: str, payload: bytes, reason: str
) -> None:
    rejected = decode(topic, payload)
    assert isinstance(rejected, Rejected)
    assert reason in rejected.reason

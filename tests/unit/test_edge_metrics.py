"""NodeMetrics: own registry per node, the counters a dashboard needs."""

from __future__ import annotations

import numpy as np

from edge.frames import InspectedFrame, ModelIdentity
from edge.metrics import NodeMetrics
from edge.runtime.policy import Verdict


def test_each_node_has_its_own_registry_and_counts_verdicts() -> None:
    first, second = NodeMetrics(), NodeMetrics()
    frame = InspectedFrame(
        frame_id="f",
        captured_at_ms=0,
        image=np.zeros((4, 4, 3), dtype=np.uint8),
        anomaly_map=np.zeros((4, 4), dtype=np.float32),
        image_score=3.0,
        verdict=Verdict.ABNORMAL,
        threshold=2.0,
        uncertain_low=1.5,
        model=ModelIdentity("tiny", "1", "0" * 64),
        latency_ms=2.0,
    )
    first.observe(frame, inference_ms=1.0, source="camera")
    first.frames_dropped.inc(3)
    text = first.render().decode()
    assert 'linewatch_verdicts_total{source="camera",verdict="abnormal"} 1.0' in text
    assert 'linewatch_frames_processed_total{source="camera"} 1.0' in text
    assert "linewatch_frames_dropped_total 3.0" in text
    assert "linewatch_inference_latency_seconds_count 1.0" in text
    assert "linewatch_frames_dropped_total 0.0" in second.render().decode()

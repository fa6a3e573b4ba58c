"""LocalRecord: every flagged frame kept on disk, last N verdicts, quota sheds uncertain."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.frames import InspectedFrame, ModelIdentity
from edge.metrics import NodeMetrics
from edge.recorder import LocalRecord
from edge.runtime.policy import Verdict
from tests.plugins.edge import decode

_MODEL = ModelIdentity(name="tiny", version="1", model_sha256="0" * 64)
_SCORES = {Verdict.NORMAL: 0.1, Verdict.UNCERTAIN: 1.7, Verdict.ABNORMAL: 3.0}


def _frame(verdict: Verdict, index: int, *, noisy: bool = False) -> InspectedFrame:
    rng = np.random.default_rng(index)
    image = (
        rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        if noisy
        else np.full((64, 64, 3), 100, dtype=np.uint8)
    )
    return InspectedFrame(
        frame_id=f"f{index}",
        captured_at_ms=1_700_000_000_000 + index,
        image=image,
        anomaly_map=np.full((64, 64), _SCORES[verdict], dtype=np.float32),
        image_score=_SCORES[verdict],
        verdict=verdict,
        threshold=2.0,
        uncertain_low=1.5,
        model=_MODEL,
        latency_ms=1.0,
    )


def test_flagged_frames_are_stored_with_image_and_map(tmp_path: Path) -> None:
    record = LocalRecord(tmp_path)
    for index, verdict in enumerate([Verdict.NORMAL, Verdict.UNCERTAIN, Verdict.ABNORMAL]):
        record.handle(_frame(verdict, index))
    flagged = record.flagged_frames()
    assert [(f.frame_id, f.verdict) for f in flagged] == [
        ("f1", Verdict.UNCERTAIN),
        ("f2", Verdict.ABNORMAL),
    ]
    image = decode(flagged[1].image_path)
    assert image.shape == (64, 64, 3) and int(image[0, 0, 0]) == 100
    assert decode(flagged[1].anomaly_map_path).shape == (64, 64)
    record.close()


def test_keeps_the_last_n_verdicts_and_survives_a_reopen(tmp_path: Path) -> None:
    record = LocalRecord(tmp_path, keep_verdicts=10, flush_every=3)
    for index in range(25):
        record.handle(_frame(Verdict.NORMAL, index))
    assert record.verdict_count() == 10
    assert record.recent_verdicts(2)[0].frame_id == "f24"
    record.handle(_frame(Verdict.ABNORMAL, 99))
    record.close()
    reopened = LocalRecord(tmp_path, keep_verdicts=10)
    assert [f.frame_id for f in reopened.flagged_frames()] == ["f99"]
    assert reopened.used_bytes == reopened.flagged_frames()[0].size_bytes
    reopened.close()


def test_quota_sheds_oldest_uncertain_first_never_abnormal(tmp_path: Path) -> None:
    probe = LocalRecord(tmp_path / "probe")
    probe.handle(_frame(Verdict.ABNORMAL, 0, noisy=True))
    one_frame = probe.used_bytes
    probe.close()
    record = LocalRecord(tmp_path / "record", quota_bytes=int(one_frame * 4.5))
    verdicts = [Verdict.UNCERTAIN, Verdict.ABNORMAL] * 3 + [Verdict.ABNORMAL] * 3
    for index, verdict in enumerate(verdicts):
        record.handle(_frame(verdict, index, noisy=True))
    kept = record.flagged_frames()
    abnormal = [f.frame_id for f in kept if f.verdict is Verdict.ABNORMAL]
    assert abnormal == ["f1", "f3", "f5", "f6", "f7", "f8"]  # all kept, even over quota
    assert [f.frame_id for f in kept if f.verdict is Verdict.UNCERTAIN] == []
    on_disk = {p.name for p in record.frames_dir.iterdir()}
    assert on_disk == {p.name for f in kept for p in (f.image_path, f.anomaly_map_path)}
    record.close()


def test_quota_keeps_newer_uncertain_when_it_can(tmp_path: Path) -> None:
    probe = LocalRecord(tmp_path / "probe")
    probe.handle(_frame(Verdict.UNCERTAIN, 0, noisy=True))
    one_frame = probe.used_bytes
    probe.close()
    record = LocalRecord(tmp_path / "record", quota_bytes=int(one_frame * 2.5))
    for index in range(5):
        record.handle(_frame(Verdict.UNCERTAIN, index, noisy=True))
    assert [f.frame_id for f in record.flagged_frames()] == ["f3", "f4"]
    assert record.used_bytes <= record.quota_bytes
    record.close()


def test_a_write_that_fails_is_logged_and_counted(tmp_path: Path) -> None:
    metrics = NodeMetrics()
    record = LocalRecord(tmp_path, metrics=metrics)
    record.frames_dir.rmdir()
    record.frames_dir.write_text("not a folder")  # writes into it now fail like a full disk
    record.handle(_frame(Verdict.ABNORMAL, 0))
    assert record.failures == 1
    assert b"linewatch_record_failures_total 1.0" in metrics.render()
    record.close()

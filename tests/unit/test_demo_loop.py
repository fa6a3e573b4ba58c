"""The demo's loop parts on their own: the simulated reviewer and the before/after tally.

Samples go in through the collector's writer into a migrated SQLite file, verdicts
through the node's own ``LocalRecord``; the video labels are written by hand.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import select

from cloud.collector.store import BlobStore
from cloud.db.migrate import upgrade
from cloud.db.models import Review, ReviewState, Sample
from cloud.db.repository import MessageWriter, SampleRecord
from cloud.db.session import make_engine, make_session_factory
from cloud.demo.processes import LogFollower
from cloud.demo.reviewer import REVIEWER, part_of_frame, review_collected
from cloud.demo.tally import VersionCounts, before_after_lines, count_verdicts
from cloud.synth import LinePart, LineVideoLabels
from edge.frames import InspectedFrame, ModelIdentity
from edge.recorder import LocalRecord
from edge.runtime.mqtt_link import NodeIdentity
from edge.runtime.policy import Verdict

# Ten frames: part 0 (frames 0-4) is good, part 1 (frames 5-9) has a crack.
LABELS = LineVideoLabels(
    video=Path("line.avi"),
    category="metal",
    seed=0,
    fps=25.0,
    n_frames=10,
    frames_per_part=5,
    parts=(LinePart(0, 0, 4, None), LinePart(1, 5, 9, "crack")),
)


def test_a_frame_id_is_placed_in_the_looped_video() -> None:
    assert part_of_frame(LABELS, "1700000000000-3") == LABELS.parts[0]
    assert part_of_frame(LABELS, "1700000000000-7") == LABELS.parts[1]
    assert part_of_frame(LABELS, "1700000000000-13") == LABELS.parts[0]  # second pass
    assert part_of_frame(LABELS, "frame-ab12") is None  # not a camera frame id


def _add_sample(writer_root: Path, db_url: str, node: str, frame_id: str, png: bytes) -> str:
    blob = BlobStore(writer_root).put(png, ".png")
    at = datetime.now(UTC) - timedelta(minutes=1)
    record = SampleRecord(
        id=uuid.uuid4().hex, node=NodeIdentity("demo", "line1", node), frame_id=frame_id,
        captured_at=at, received_at=at, verdict="uncertain", image_score=1.2, threshold=1.5,
        uncertain_low=1.0, model_name="metal", model_version="1", model_sha256="ab" * 32,
        image_path=blob.path, image_sha256=blob.sha256, heatmap_path=None, heatmap_sha256=None,
    )  # fmt: skip
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine).begin() as session:
            MessageWriter().add_sample(session, record)
    finally:
        engine.dispose()
    return record.id


def test_the_reviewer_labels_each_distinct_image_from_the_truth(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'linewatch.db'}"
    upgrade(db_url)
    store = tmp_path / "samples"
    good = _add_sample(store, db_url, "cam-07", "1700000000000-2", b"good frame 2")
    cracked = _add_sample(store, db_url, "cam-07", "1700000000000-6", b"cracked frame 6")
    repeat = _add_sample(store, db_url, "cam-07", "1700000000400-12", b"good frame 2")
    stranger = _add_sample(store, db_url, "cam-99", "1700000000000-2", b"other node")
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    try:
        tally = review_collected(sessions, {"cam-07": LABELS})
        with sessions() as session:
            reviews = {r.sample_id: r for r in session.scalars(select(Review))}
            states = {s.id: s.review_state for s in session.scalars(select(Sample))}
    finally:
        engine.dispose()

    assert (tally.normals, tally.defects, tally.repeats, tally.skipped) == (1, 1, 1, 1)
    assert reviews[good].label == "normal" and reviews[good].reviewer == REVIEWER
    assert reviews[cracked].label == "defect" and reviews[cracked].defect_type == "crack"
    assert states[repeat] == ReviewState.PENDING and states[stranger] == ReviewState.PENDING


def _frame(index: int, verdict: Verdict, version: str) -> InspectedFrame:
    return InspectedFrame(
        frame_id=f"1700000000000-{index}", captured_at_ms=1_700_000_000_000 + index,
        image=np.zeros((8, 8, 3), dtype=np.uint8), anomaly_map=np.zeros((8, 8), np.float32),
        image_score=1.0, verdict=verdict, threshold=1.5, uncertain_low=1.0,
        model=ModelIdentity("metal", version, "ab" * 32), latency_ms=1.0,
    )  # fmt: skip


def test_versions_are_counted_on_distinct_frames_against_the_truth(tmp_path: Path) -> None:
    record = LocalRecord(tmp_path / "record")
    judged = [
        (0, Verdict.ABNORMAL, "1"), (1, Verdict.UNCERTAIN, "1"), (2, Verdict.NORMAL, "1"),
        (5, Verdict.NORMAL, "1"), (6, Verdict.ABNORMAL, "1"),
        (10, Verdict.ABNORMAL, "1"), (12, Verdict.UNCERTAIN, "1"),  # a second pass: frames 0, 2
        (10, Verdict.NORMAL, "2"), (11, Verdict.NORMAL, "2"), (15, Verdict.ABNORMAL, "2"),
    ]  # fmt: skip
    for index, verdict, version in judged:
        record.handle(_frame(index, verdict, version))
    record.close()

    records, videos = {"cam-07": record.directory / "record.sqlite3"}, {"cam-07": LABELS}

    alone = count_verdicts(records, videos, "metal", ["1"])
    before, after = count_verdicts(records, videos, "metal", ["1", "2"])

    assert alone == [VersionCounts("metal:1", 7, 5, false_alarms=1, uncertain_good=2, misses=1)]
    # Version 2 judged frames 0, 1 and 5 only: both rows count those three.
    assert before == VersionCounts("metal:1", 7, 3, false_alarms=1, uncertain_good=1, misses=1)
    assert after == VersionCounts("metal:2", 3, 3, false_alarms=0, uncertain_good=0, misses=0)
    table = before_after_lines(before, after)
    assert table[1].split() == ["before", "metal:1", "7", "3", "1", "333.3", "1", "1", "333.3"]
    assert table[2].split() == ["after", "metal:2", "3", "3", "0", "0.0", "0", "0", "0.0"]


def test_the_log_follower_returns_only_complete_new_lines(tmp_path: Path) -> None:
    log = tmp_path / "deployer.log"
    log.write_text("before we looked\n")
    follower = LogFollower(log)
    with log.open("a") as out:
        out.write("deploying metal:2\n  cam-07 succ")
    assert follower.new_lines() == ["deploying metal:2"]
    with log.open("a") as out:
        out.write("eeded\n")
    assert follower.new_lines() == ["  cam-07 succeeded"]
    assert follower.new_lines() == []

"""Idempotent writes and the list queries, on a migrated SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.db.models import Alert, Node, ReviewState, Sample
from cloud.db.queries import list_alerts, list_nodes, list_samples
from cloud.db.repository import AlertRecord, MessageWriter, SampleRecord, StatusRecord
from cloud.db.session import make_engine, make_session_factory
from edge.runtime.mqtt_link import NodeIdentity

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
NODE = NodeIdentity("plant1", "line2", "cam3")


def _alert(alert_id: str, *, node: NodeIdentity = NODE, minutes: int = 0) -> AlertRecord:
    return AlertRecord(
        id=alert_id,
        node=node,
        frame_id=f"f-{alert_id}",
        captured_at=T0 + timedelta(minutes=minutes),
        received_at=T0 + timedelta(minutes=minutes, seconds=1),
        verdict="abnormal",
        image_score=4.0,
        threshold=3.0,
        model_name="tiny",
        model_version="1",
        model_sha256="",
        thumbnail_path=None,
        sample_id=None,
    )


def _sample(sample_id: str, verdict: str, minutes: int = 0) -> SampleRecord:
    return SampleRecord(
        id=sample_id,
        node=NODE,
        frame_id=f"f-{sample_id}",
        captured_at=T0 + timedelta(minutes=minutes),
        received_at=T0 + timedelta(minutes=minutes, seconds=1),
        verdict=verdict,
        image_score=2.5,
        threshold=3.0,
        uncertain_low=2.0,
        model_name="tiny",
        model_version="1",
        model_sha256="",
        image_path="ab/cd/abcd.png",
        image_sha256="abcd",
        heatmap_path=None,
        heatmap_sha256=None,
        extra={"latency_ms": "1.5"},
    )


@pytest.fixture
def session(sqlite_url: str) -> Iterator[Session]:
    engine = make_engine(sqlite_url)
    with make_session_factory(engine)() as opened:
        yield opened
    engine.dispose()


def test_a_message_id_is_stored_once(session: Session) -> None:
    writer = MessageWriter()
    assert writer.add_alert(session, _alert("a1")) is True
    assert writer.add_alert(session, _alert("a1")) is False
    assert writer.add_sample(session, _sample("s1", "uncertain")) is True
    session.commit()
    writer.committed()
    assert MessageWriter().add_sample(session, _sample("s1", "uncertain")) is False

    assert session.scalar(select(func.count()).select_from(Alert)) == 1
    assert session.scalar(select(func.count()).select_from(Sample)) == 1
    assert session.scalar(select(func.count()).select_from(Node)) == 1
    stored = session.get(Sample, "s1")
    assert stored is not None
    assert stored.extra == {"latency_ms": "1.5"}
    assert stored.review_state == ReviewState.PENDING
    assert stored.captured_at == T0  # aware UTC back out of SQLite


def test_an_older_status_does_not_undo_a_newer_one(session: Session) -> None:
    writer = MessageWriter()

    def status(online: bool, minutes: int) -> StatusRecord:
        return StatusRecord(
            NODE, online, T0 + timedelta(minutes=minutes), "10.0.0.3:50051", "tiny", "2", 10, 0
        )

    assert writer.apply_status(session, status(True, 5)) is True
    assert writer.apply_status(session, status(False, 1)) is False
    session.commit()
    (node,) = list_nodes(session)
    assert node.online is True
    assert node.grpc_address == "10.0.0.3:50051"
    assert node.model_version == "2"
    assert node.last_seen_at == T0 + timedelta(minutes=5)
    assert writer.apply_status(session, status(False, 6)) is True
    session.commit()
    assert list_nodes(session)[0].online is False


def test_list_alerts_filters_by_node_and_time_newest_first(session: Session) -> None:
    writer = MessageWriter()
    other = NodeIdentity("plant1", "line2", "cam9")
    for index in range(3):
        writer.add_alert(session, _alert(f"a{index}", minutes=index))
    writer.add_alert(session, _alert("b0", node=other, minutes=10))
    session.commit()

    assert [a.id for a in list_alerts(session)] == ["b0", "a2", "a1", "a0"]
    assert [a.id for a in list_alerts(session, node="cam3")] == ["a2", "a1", "a0"]
    since = T0 + timedelta(minutes=1)
    assert [a.id for a in list_alerts(session, node="cam3", since=since)] == ["a2", "a1"]
    as_json = list_alerts(session, limit=1)[0].to_json()
    assert as_json["id"] == "b0"
    assert as_json["captured_at"] == "2026-01-05T08:10:00+00:00"


def test_list_samples_filters_by_verdict_and_review_state(session: Session) -> None:
    writer = MessageWriter()
    writer.add_sample(session, _sample("u1", "uncertain", 0))
    writer.add_sample(session, _sample("x1", "abnormal", 1))
    writer.add_sample(session, _sample("u2", "uncertain", 2))
    session.commit()
    reviewed = session.get(Sample, "u1")
    assert reviewed is not None
    reviewed.review_state = ReviewState.REVIEWED
    session.commit()

    assert [s.id for s in list_samples(session, verdict="uncertain")] == ["u2", "u1"]
    assert [s.id for s in list_samples(session, reviewed=False)] == ["u2", "x1"]
    assert [s.id for s in list_samples(session, reviewed=True)] == ["u1"]

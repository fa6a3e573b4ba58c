"""Edge sink → real Mosquitto → collector → SQLite/PostgreSQL, and the broker outage."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import select

from cloud.collector.collector import Collector
from cloud.db.migrate import upgrade
from cloud.db.models import Alert, Node, Sample
from cloud.db.session import make_engine, make_session_factory
from edge.runtime.policy import Verdict
from tests.plugins.mqtt import (
    Broker,
    CollectorFactory,
    FrameFactory,
    SinkFactory,
    wait_for,
)

pytestmark = pytest.mark.integration

OUTAGE_S = 3.0  # the bench script runs the 30 s outage


def _rows(db_url: str) -> tuple[list[Alert], list[Sample], list[Node]]:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            return (
                list(session.scalars(select(Alert))),
                list(session.scalars(select(Sample))),
                list(session.scalars(select(Node))),
            )
    finally:
        engine.dispose()


def _counts(db_url: str) -> tuple[int, int]:
    alerts, samples, _ = _rows(db_url)
    return len(alerts), len(samples)


def _run_pipeline(
    broker: Broker,
    db_url: str,
    start_collector: CollectorFactory,
    start_sink: SinkFactory,
    make_frame: FrameFactory,
    tmp_path: Path,
) -> None:
    collector = start_collector(broker.url, db_url)
    sink = start_sink(broker.url)
    verdicts = [Verdict.ABNORMAL, Verdict.UNCERTAIN, Verdict.NORMAL] * 4
    frames = [make_frame(v) for v in verdicts]
    for frame in frames:
        sink.handle(frame)

    wait_for(lambda: _counts(db_url) == (4, 8), 20, "4 alerts and 8 samples in the database")
    alerts, samples, nodes = _rows(db_url)
    assert sorted(a.frame_id for a in alerts) == sorted(
        f.frame_id for f in frames if f.verdict == Verdict.ABNORMAL
    )
    assert Counter(s.verdict for s in samples) == {"abnormal": 4, "uncertain": 4}
    by_id = {s.id: s for s in samples}
    for alert in alerts:
        assert alert.sample_id in by_id
        assert by_id[alert.sample_id].frame_id == alert.frame_id
        assert alert.thumbnail_path is not None
    for sample in samples:
        image = tmp_path / "store" / sample.image_path
        assert image.is_file()
        assert sample.image_sha256 in image.name
    (node,) = nodes
    assert (node.site, node.line, node.node) == ("plant1", "line2", "cam3")
    wait_for(lambda: _rows(db_url)[2][0].online, 10, "the node marked online from its status")
    assert sink.wait_drained(10)
    assert sink.counters().backlog == 0
    assert collector.stats.malformed == 0

    sink.close()
    wait_for(lambda: not _rows(db_url)[2][0].online, 10, "the node marked offline on close")


def test_flagged_frames_reach_sqlite_once(
    mosquitto: Broker,
    sqlite_url: str,
    start_collector: CollectorFactory,
    start_sink: SinkFactory,
    make_frame: FrameFactory,
    tmp_path: Path,
) -> None:
    _run_pipeline(mosquitto, sqlite_url, start_collector, start_sink, make_frame, tmp_path)


@pytest.mark.postgres
def test_flagged_frames_reach_postgresql_once(
    mosquitto: Broker,
    postgres_url: str,
    start_collector: CollectorFactory,
    start_sink: SinkFactory,
    make_frame: FrameFactory,
    tmp_path: Path,
) -> None:
    upgrade(postgres_url)
    _run_pipeline(mosquitto, postgres_url, start_collector, start_sink, make_frame, tmp_path)


def test_broker_outage_loses_nothing_and_stores_nothing_twice(
    persistent_mosquitto: Broker,
    sqlite_url: str,
    start_collector: CollectorFactory,
    start_sink: SinkFactory,
    make_frame: FrameFactory,
) -> None:
    broker = persistent_mosquitto
    start_collector(broker.url, sqlite_url)
    sink = start_sink(broker.url, reconnect_max_delay_s=1)
    flagged = [Verdict.ABNORMAL, Verdict.UNCERTAIN]
    handled = 0

    def flag(count: int) -> None:
        nonlocal handled
        for _ in range(count):
            sink.handle(make_frame(flagged[handled % 2]))
            handled += 1

    flag(10)
    wait_for(lambda: _counts(sqlite_url)[0] >= 2, 10, "the first alerts before the outage")
    broker.stop()
    pace = threading.Event()  # never set: paces the camera at 10 frames/s
    outage_ends = time.monotonic() + OUTAGE_S
    while time.monotonic() < outage_ends:  # the node keeps flagging frames
        flag(1)
        pace.wait(0.1)
    assert sink.counters().backlog >= 10
    assert not sink.publisher.connected
    broker.start()
    flag(10)

    alerts_expected, samples_expected = (handled + 1) // 2, handled  # even frames are abnormal
    wait_for(
        lambda: _counts(sqlite_url) == (alerts_expected, samples_expected),
        30,
        f"{alerts_expected} alerts and {samples_expected} samples after the outage",
    )
    assert sink.wait_drained(10)
    alerts, samples, _ = _rows(sqlite_url)
    assert len({a.frame_id for a in alerts}) == alerts_expected
    assert len({s.frame_id for s in samples}) == samples_expected


def test_a_malformed_payload_is_counted_and_skipped(
    mosquitto: Broker,
    sqlite_url: str,
    start_collector: CollectorFactory,
    start_sink: SinkFactory,
    make_frame: FrameFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    collector: Collector = start_collector(mosquitto.url, sqlite_url)
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()
    try:
        bad_topic = "linewatch/plant1/line2/cam3/sample"
        info = publisher.publish(bad_topic, b"\x08\x96\x01 this is not a Sample", qos=1)
        info.wait_for_publish(timeout=5)
        wait_for(lambda: collector.stats.malformed == 1, 10, "the malformed message counted")
    finally:
        publisher.disconnect()
        publisher.loop_stop()
    assert any(bad_topic in r.getMessage() for r in caplog.records if r.levelname == "WARNING")

    sink = start_sink(mosquitto.url)
    sink.handle(make_frame(Verdict.ABNORMAL))
    wait_for(lambda: _counts(sqlite_url) == (1, 1), 10, "the next good message stored")
    assert collector.stats.malformed == 1

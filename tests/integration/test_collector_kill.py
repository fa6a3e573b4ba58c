"""A collector killed with SIGKILL mid-stream and restarted: nothing lost, nothing stored twice."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cloud.db.models import Alert, Node, Sample
from cloud.db.session import make_engine, make_session_factory
from edge.runtime.policy import Verdict
from tests.plugins.mqtt import Broker, FrameFactory, SinkFactory, wait_for

pytestmark = pytest.mark.integration

LINEWATCH = str(Path(sys.executable).parent / "linewatch")


def _count(db_url: str, table: type[Alert] | type[Sample] | type[Node]) -> int:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            return int(session.scalar(select(func.count()).select_from(table)) or 0)
    finally:
        engine.dispose()


def _distinct_frames(db_url: str, table: type[Alert] | type[Sample]) -> int:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            query = select(func.count(func.distinct(table.frame_id)))
            return int(session.scalar(query) or 0)
    finally:
        engine.dispose()


def _collector(
    broker: Broker, db_url: str, tmp_path: Path, log_name: str
) -> subprocess.Popen[bytes]:
    store = tmp_path / "store"
    command = [LINEWATCH, "collect", "--mqtt", broker.url, "--db", db_url, "--store", str(store)]
    with (tmp_path / log_name).open("wb") as log:  # the child keeps its own copy of the file
        return subprocess.Popen([*command, "--id", "kill-test"], stderr=log)


def test_collector_sigkilled_mid_stream_then_restarted(
    mosquitto: Broker,
    sqlite_url: str,
    start_sink: SinkFactory,
    make_frame: FrameFactory,
    tmp_path: Path,
) -> None:
    sink = start_sink(mosquitto.url, heartbeat_interval_s=0.2)
    first = _collector(mosquitto, sqlite_url, tmp_path, "first.log")
    try:
        # The node's heartbeat reaching the database proves the session is subscribed.
        wait_for(lambda: _count(sqlite_url, Node) == 1, 30, "the collector to subscribe")
        frames = [make_frame([Verdict.ABNORMAL, Verdict.UNCERTAIN][i % 2]) for i in range(300)]

        def produce() -> None:
            for frame in frames:
                sink.handle(frame)

        producer = threading.Thread(target=produce)
        producer.start()
        wait_for(lambda: _count(sqlite_url, Sample) >= 20, 30, "the first samples stored")
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL
        stored_at_kill = _count(sqlite_url, Sample)
        producer.join()
    finally:
        first.kill()
        first.wait()
    expected_alerts, expected_samples = 150, 300
    assert stored_at_kill < expected_samples, "the kill came after the stream ended"
    # Everything is at the broker, queued for the collector's persistent session.
    assert sink.wait_drained(30)

    second = _collector(mosquitto, sqlite_url, tmp_path, "second.log")
    try:
        wait_for(
            lambda: (
                _count(sqlite_url, Sample) == expected_samples
                and _count(sqlite_url, Alert) == expected_alerts
            ),
            60,
            f"{expected_alerts} alerts and {expected_samples} samples after the restart",
        )
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=20)
    stderr = (tmp_path / "second.log").read_text()
    assert second.returncode == 0, stderr
    assert "stopped;" in stderr
    assert _distinct_frames(sqlite_url, Alert) == expected_alerts
    assert _distinct_frames(sqlite_url, Sample) == expected_samples

"""Two collectors on one shared subscription split the work and store every message once;
when one stops, the other takes all that follows."""

from __future__ import annotations

import pytest
from sqlalchemy import func

from cloud.db.migrate import upgrade
from cloud.db.models import Alert, Sample
from edge.runtime.policy import Verdict
from tests.plugins.mqtt import (
    Broker,
    CollectorFactory,
    FrameFactory,
    SinkFactory,
    count_rows,
    wait_for,
)

pytestmark = pytest.mark.integration


def _stored(db_url: str) -> tuple[int, int, int]:
    """(alerts, samples, distinct sample frame ids) in the database."""
    frames = func.count(func.distinct(Sample.frame_id))
    return count_rows(db_url, Alert), count_rows(db_url, Sample), count_rows(db_url, frames)


def test_two_collectors_share_the_load_and_store_each_message_once(
    mosquitto: Broker,
    sqlite_url: str,
    start_collector: CollectorFactory,
    start_sink: SinkFactory,
    make_frame: FrameFactory,
) -> None:
    upgrade(sqlite_url)
    first = start_collector(mosquitto.url, sqlite_url, collector_id="collector-a")
    second = start_collector(mosquitto.url, sqlite_url, collector_id="collector-b")
    sink = start_sink(mosquitto.url)

    for _ in range(30):
        sink.handle(make_frame(Verdict.ABNORMAL))  # an alert and a sample each
    wait_for(lambda: _stored(sqlite_url) == (30, 30, 30), 30, "30 alerts and 30 samples")
    assert sink.wait_drained(10)
    shares = (first.stats.alerts + first.stats.samples, second.stats.alerts + second.stats.samples)
    assert sum(shares) == 60
    assert min(shares) > 0, f"one collector did all the work: {shares}"
    assert first.stats.duplicates + second.stats.duplicates == 0

    first.stop()
    for _ in range(10):
        sink.handle(make_frame(Verdict.UNCERTAIN))  # samples only
    wait_for(lambda: _stored(sqlite_url) == (30, 40, 40), 30, "10 more samples via collector-b")
    assert second.stats.samples >= 10

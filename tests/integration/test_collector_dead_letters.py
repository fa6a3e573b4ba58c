"""No message can stop the collector: what it cannot store is set aside, and storage goes on."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from cloud.db.migrate import upgrade
from cloud.db.models import Alert, Node, RejectedMessage
from cloud.db.session import make_engine, make_session_factory
from edge.frames import Heartbeat
from edge.mqtt.messages import build_alert, build_status
from edge.runtime.mqtt_link import MessageKind, NodeIdentity, topic_for
from edge.runtime.policy import Verdict
from tests.plugins.mqtt import (
    Broker,
    CollectorFactory,
    RawPublisher,
    SinkFactory,
    build_frame,
    count_rows,
    wait_for,
)

pytestmark = pytest.mark.integration

NODE = NodeIdentity(site="plant1", line="line2", node="cam3")
YEAR_9999_MS = 253_402_300_799_000


def _alert(index: int, **changes: object) -> bytes:
    alert = build_alert(build_frame(index, Verdict.ABNORMAL), NODE, sample_id="")
    for name, value in changes.items():
        setattr(alert, name, value)
    return alert.SerializeToString()


def _rejected(db_url: str) -> list[RejectedMessage]:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            return list(session.scalars(select(RejectedMessage)))
    finally:
        engine.dispose()


def _node(db_url: str) -> Node | None:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            return session.scalars(select(Node)).first()
    finally:
        engine.dispose()


def test_an_alert_dated_2_to_the_62_is_set_aside_and_never_stops_storage(
    persistent_mosquitto: Broker, sqlite_url: str, start_collector: CollectorFactory
) -> None:
    broker = persistent_mosquitto
    collector = start_collector(broker.url, sqlite_url, collector_id="dead-letter-test")
    publisher = RawPublisher(broker)
    alert_topic = topic_for(NODE, MessageKind.ALERT)
    try:
        publisher.publish(alert_topic, _alert(0, captured_at_ms=2**62))
        for index in range(1, 6):
            publisher.publish(alert_topic, _alert(index))
        wait_for(lambda: count_rows(sqlite_url, Alert) == 5, 20, "the 5 good alerts stored")
        wait_for(lambda: collector.stats.rejected == 1, 10, "the bad alert counted")
        (rejected,) = _rejected(sqlite_url)
        assert rejected.topic == alert_topic
        assert "captured_at_ms" in rejected.reason
        assert rejected.collector_id == "dead-letter-test"
        assert rejected.payload_size_bytes == len(rejected.payload) > 0
        collector.stop()

        # Restarted on the same persistent session: nothing comes back to die again.
        again = start_collector(broker.url, sqlite_url, collector_id="dead-letter-test")
        publisher.publish(alert_topic, _alert(7))
        wait_for(lambda: count_rows(sqlite_url, Alert) == 6, 20, "the next alert stored")
    finally:
        publisher.close()
    assert again.stats.rejected == 0
    assert again.stats.alerts == 1
    assert len(_rejected(sqlite_url)) == 1


def test_a_status_from_year_9999_does_not_pin_the_node(
    mosquitto: Broker,
    sqlite_url: str,
    start_collector: CollectorFactory,
    start_sink: SinkFactory,
    raw_publisher: RawPublisher,
) -> None:
    collector = start_collector(mosquitto.url, sqlite_url)
    forged = build_status(
        NODE,
        online=True,
        grpc_address="10.6.6.6:50051",
        heartbeat=Heartbeat(),
        sent_at_ms=YEAR_9999_MS,
    )
    raw_publisher.publish(topic_for(NODE, MessageKind.STATUS), forged.SerializeToString())
    wait_for(lambda: collector.stats.rejected == 1, 10, "the forged status set aside")

    start_sink(mosquitto.url, heartbeat_interval_s=0.2)  # the real node's heartbeats

    def real_heartbeat_applied() -> bool:
        node = _node(sqlite_url)
        return node is not None and node.grpc_address == "127.0.0.1:50051" and node.online

    wait_for(real_heartbeat_applied, 10, "the real heartbeat on the node's row")
    node = _node(sqlite_url)
    assert node is not None and node.status_at is not None
    assert node.status_at.year < 9999
    assert "sent_at_ms" in _rejected(sqlite_url)[0].reason


def _refuse_frame_ids_named_poison(db_url: str) -> None:
    engine: Engine = make_engine(db_url)
    with engine.begin() as connection:  # the database itself refuses the row
        connection.exec_driver_sql(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON alerts "
            "WHEN NEW.frame_id = 'poison' BEGIN SELECT RAISE(ABORT, 'poison refused'); END"
        )
    engine.dispose()


def test_a_batch_with_a_row_the_database_refuses_stores_the_rest(
    mosquitto: Broker,
    sqlite_url: str,
    start_collector: CollectorFactory,
    raw_publisher: RawPublisher,
) -> None:
    _refuse_frame_ids_named_poison(sqlite_url)
    # A long batch window puts the 21 messages in one transaction.
    collector = start_collector(mosquitto.url, sqlite_url, batch_wait_ms=500.0)
    topic = topic_for(NODE, MessageKind.ALERT)
    for index in range(21):
        changes = {"frame_id": "poison"} if index == 10 else {}
        raw_publisher.publish(topic, _alert(index, **changes))
    wait_for(lambda: collector.stats.rejected == 1, 20, "the refused alert set aside")
    wait_for(lambda: count_rows(sqlite_url, Alert) == 20, 10, "the 20 other alerts stored")
    (rejected,) = _rejected(sqlite_url)
    assert "poison refused" in rejected.reason
    assert collector.stats.malformed == 0  # it reached the database; it was not malformed
    assert collector.stats.alerts == 20


@pytest.mark.postgres
def test_postgresql_refusing_a_nul_in_a_frame_id_stores_the_rest(
    mosquitto: Broker,
    postgres_url: str,
    start_collector: CollectorFactory,
    raw_publisher: RawPublisher,
) -> None:
    upgrade(postgres_url)
    collector = start_collector(mosquitto.url, postgres_url, batch_wait_ms=500.0)
    topic = topic_for(NODE, MessageKind.ALERT)
    for index in range(11):
        changes = {"frame_id": "nul\x00inside"} if index == 5 else {}
        raw_publisher.publish(topic, _alert(index, **changes))
    wait_for(lambda: collector.stats.rejected == 1, 20, "the refused alert set aside")
    wait_for(lambda: count_rows(postgres_url, Alert) == 10, 10, "the 10 other alerts stored")
    assert "NUL" in _rejected(postgres_url)[0].reason


@pytest.mark.postgres
def test_postgresql_going_away_mid_stream_loses_nothing_and_stores_nothing_twice(
    mosquitto: Broker,
    postgres_url: str,
    start_collector: CollectorFactory,
    raw_publisher: RawPublisher,
) -> None:
    import psycopg2

    upgrade(postgres_url)
    database = postgres_url.rsplit("/", 1)[-1]
    collector = start_collector(mosquitto.url, postgres_url)
    topic = topic_for(NODE, MessageKind.ALERT)
    admin = psycopg2.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={database}")
    admin.autocommit = True
    try:
        for index in range(300):
            raw_publisher.publish(topic, _alert(index))
            if index % 50 == 25:  # the server drops the collector's connections
                with admin.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()",
                        (database,),
                    )
        wait_for(lambda: count_rows(postgres_url, Alert) == 300, 60, "all 300 alerts stored")
    finally:
        admin.close()
    assert collector.stats.alerts + collector.stats.duplicates >= 300
    assert collector.stats.rejected == 0
    assert _rejected(postgres_url) == []
    frames = func.count(func.distinct(Alert.frame_id))
    assert count_rows(postgres_url, frames) == 300  # one row per frame: nothing stored twice

"""Shared pytest fixtures: a real Mosquitto broker, databases, and flagged frames.

The broker runs ``/usr/sbin/mosquitto`` on a free loopback port and can be
stopped and started again on the same port (the outage tests). PostgreSQL is
used when a server answers on 127.0.0.1:5432 as user ``postgres``; otherwise
those tests skip and say why.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.sql import ColumnElement

from cloud.collector.collector import Collector
from cloud.collector.settings import CollectorSettings
from cloud.collector.store import BlobStore
from cloud.db.migrate import upgrade
from cloud.db.session import make_engine, make_session_factory
from cloud.demo.processes import free_port
from edge.frames import InspectedFrame, ModelIdentity
from edge.mqtt.config import MqttConfig
from edge.mqtt.sink import MqttSink, build_mqtt_sink
from edge.runtime.mqtt_link import NodeIdentity
from edge.runtime.policy import Verdict
from tests.plugins.edge import wait_until

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
POSTGRES_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=2"


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """``wait_until`` at a 20 ms poll: these conditions ask a database or a broker."""
    wait_until(condition, timeout_s, what, poll_s=0.02)


def count_rows(db_url: str, what: type | ColumnElement[int]) -> int:
    """Rows of a model's table, or the value of a count expression, in a fresh session."""
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            query = (
                select(func.count()).select_from(what) if isinstance(what, type) else select(what)
            )
            return int(session.scalar(query) or 0)
    finally:
        engine.dispose()


class Broker:
    """One Mosquitto process that can be stopped and restarted on the same port."""

    def __init__(
        self,
        workdir: Path,
        *,
        persistence: bool = False,
        secure_options: Sequence[str] = (),
    ) -> None:
        """``secure_options``: listener lines (certificates, password file); they turn
        anonymous access off and, with a certfile, make the URL ``mqtts://``."""
        self.workdir = workdir
        self.port = free_port()
        tls = any(line.startswith("certfile") for line in secure_options)
        self.url = f"{'mqtts' if tls else 'mqtt'}://127.0.0.1:{self.port}"
        self.persistence = persistence
        self._process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "mosquitto.conf"
        self.config_path.write_text(
            "\n".join(
                [
                    f"listener {self.port} 127.0.0.1",
                    *secure_options,
                    f"allow_anonymous {'false' if secure_options else 'true'}",
                    f"persistence {'true' if persistence else 'false'}",
                    f"persistence_location {workdir}/",
                    "max_queued_messages 0",  # no cap: the collector's queue must not drop
                    "set_tcp_nodelay true",
                    # Started as root, mosquitto drops to user "mosquitto", which cannot
                    # write the test's temp folder: stay the user that started it.
                    *(["user root"] if os.geteuid() == 0 else []),
                    f"log_dest file {workdir}/mosquitto.log",
                    "log_type error",
                    "log_type warning",
                    "",
                ]
            )
        )

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the broker and wait until it accepts connections."""
        self._process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while not self._accepts():
            if self._process.poll() is not None:
                log = (self.workdir / "mosquitto.log").read_text(errors="replace")
                pytest.fail(f"mosquitto exited with {self._process.returncode}: {log}")
            if time.monotonic() > deadline:
                pytest.fail(f"mosquitto did not listen on port {self.port} in {timeout_s}s")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the broker (SIGTERM; with persistence it saves its state first)."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A running broker without persistence, stopped after the test."""
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed; .ci/run installs it")
    broker = Broker(tmp_path / "broker")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def persistent_mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A running broker that keeps sessions and queues across a restart, as production does."""
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed; .ci/run installs it")
    broker = Broker(tmp_path / "broker", persistence=True)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite database in the test's temp folder."""
    url = f"sqlite:///{tmp_path / 'linewatch.db'}"
    upgrade(url)
    return url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (dropped afterwards), or a skip with the reason."""
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        admin = psycopg2.connect(POSTGRES_ADMIN_DSN)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432 as user postgres: {exc}".strip())
    admin.autocommit = True
    name = f"linewatch_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


FrameFactory = Callable[..., InspectedFrame]
_SCORES = {Verdict.NORMAL: 0.5, Verdict.UNCERTAIN: 2.5, Verdict.ABNORMAL: 4.0}


def build_frame(index: int, verdict: Verdict, *, size_px: int = 64) -> InspectedFrame:
    """One small frame judged ``verdict`` (threshold 3, band from 2), seeded by ``index``."""
    rng = np.random.default_rng(index)
    return InspectedFrame(
        frame_id=f"frame-{index:06d}",
        captured_at_ms=int(time.time() * 1000),
        image=rng.integers(0, 256, size=(size_px, size_px, 3), dtype=np.uint8),
        anomaly_map=rng.random((32, 32), dtype=np.float32) * 6.0,
        image_score=_SCORES[verdict],
        verdict=verdict,
        threshold=3.0,
        uncertain_low=2.0,
        model=ModelIdentity(name="tiny", version="1", model_sha256="ab" * 32),
        latency_ms=1.5,
    )


@pytest.fixture
def make_frame() -> FrameFactory:
    """Build small frames with distinct ids and images: 64x64 BGR, a 32x32 map."""
    counter = iter(range(1_000_000))

    def make(verdict: Verdict = Verdict.ABNORMAL, *, size_px: int = 64) -> InspectedFrame:
        return build_frame(next(counter), verdict, size_px=size_px)

    return make


@pytest.fixture
def node_identity() -> NodeIdentity:
    """Where the test node stands."""
    return NodeIdentity(site="plant1", line="line2", node="cam3")


CollectorFactory = Callable[..., Collector]


@pytest.fixture
def start_collector(tmp_path: Path) -> Iterator[CollectorFactory]:
    """Start in-process collectors on a broker and a database; stopped after the test."""
    started: list[tuple[Collector, Engine]] = []

    def start(broker_url: str, db_url: str, **overrides: object) -> Collector:
        settings = CollectorSettings(
            mqtt_url=broker_url,
            db_url=db_url,
            store_dir=tmp_path / "store",
            collector_id=str(overrides.pop("collector_id", "test-collector")),
            **overrides,  # type: ignore[arg-type]
        )
        engine = make_engine(db_url)
        collector = Collector(settings, make_session_factory(engine), BlobStore(settings.store_dir))
        collector.start()
        started.append((collector, engine))
        if not collector.wait_subscribed(10.0):
            pytest.fail(f"collector did not subscribe on {broker_url}")
        return collector

    yield start
    for collector, engine in started:
        collector.stop()
        engine.dispose()


SinkFactory = Callable[..., MqttSink]


@pytest.fixture
def start_sink(tmp_path: Path, node_identity: NodeIdentity) -> Iterator[SinkFactory]:
    """Start MQTT sinks (outbox in the test's temp folder); closed after the test."""
    sinks: list[MqttSink] = []

    def start(broker_url: str, **overrides: object) -> MqttSink:
        config = MqttConfig.from_url(
            broker_url,
            outbox_dir=Path(str(overrides.pop("outbox_dir", tmp_path / "outbox"))),
            heartbeat_interval_s=float(overrides.pop("heartbeat_interval_s", 0.5)),  # type: ignore[arg-type]
            **overrides,  # type: ignore[arg-type]
        )
        sink = build_mqtt_sink(config, node_identity, "127.0.0.1:50051")
        sinks.append(sink)
        return sink

    yield start
    for sink in sinks:
        sink.close()


class RawPublisher:
    """A bare MQTT 5 client that publishes any bytes on any topic: a forged or broken node."""

    def __init__(self, broker: Broker) -> None:
        """Connect to ``broker`` and start paho's loop."""
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        self._client.connect("127.0.0.1", broker.port)
        self._client.loop_start()

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK."""
        info = self._client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=5)

    def close(self) -> None:
        """Disconnect and stop the loop."""
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def raw_publisher(mosquitto: Broker) -> Iterator[RawPublisher]:
    """A bare publisher on the test's broker, closed after the test."""
    publisher = RawPublisher(mosquitto)
    yield publisher
    publisher.close()

"""Bench the edge → Mosquitto → collector → database pipeline, and a broker outage.

Runs a private Mosquitto (persistence on, like production) on a free port, an
edge sink with its outbox, and a collector, all in this process, and prints:

- the collector alone: messages/s into SQLite (and PostgreSQL with ``--postgres URL``),
  alerts only and ~1 MB samples, drained from a backlog queued at the broker for the
  collector's persistent session (what the collector can do, whatever feeds it), next
  to the figures measured before the batched writer (issue 16);
- the same through the edge sink (outbox, publisher), from the first message written to
  the outbox to the last commit: one node's path, which the node's outbox bounds;
- end-to-end latency p50/p99 from the frame's ``captured_at_ms`` to the commit of its
  row, at a steady frame rate;
- the backlog drain rate after the broker was down for ``--outage-s`` seconds while
  the node kept flagging frames, and a check that every message arrived exactly once.

    python bench/mqtt_pipeline.py [--postgres URL] [--outage-s 30] [--alerts 500] [--samples 40]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloud.collector.collector import Collector
from cloud.collector.settings import CollectorSettings
from cloud.collector.store import BlobStore
from cloud.db.migrate import upgrade
from cloud.db.models import Alert, Sample
from cloud.db.session import make_engine, make_session_factory
from edge.frames import InspectedFrame, ModelIdentity
from edge.mqtt.config import MqttConfig
from edge.mqtt.messages import frame_messages
from edge.mqtt.sink import MqttSink, build_mqtt_sink
from edge.runtime.mqtt_link import NodeIdentity, shared_subscription
from edge.runtime.policy import Verdict
from tests.plugins.mqtt import Broker  # the tests' broker: restartable on its port

IDENTITY = NodeIdentity(site="bench", line="line1", node="cam1")
# Issue 16's "today", measured before the batched writer (per-row ORM inserts), msg/s.
BEFORE = {
    ("sqlite", "alerts"): "279-343",
    ("postgresql", "alerts"): "157-249",
    ("sqlite", "samples"): "-",
    ("postgresql", "samples"): "46-65",
}


def _until(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout_s}s waiting for {what}"
            raise TimeoutError(msg)
        time.sleep(0.005)


def _frame(index: int, verdict: Verdict, side_px: int) -> InspectedFrame:
    rng = np.random.default_rng(index)
    return InspectedFrame(
        frame_id=f"bench-{index:07d}",
        captured_at_ms=int(time.time() * 1000),
        image=rng.integers(0, 256, size=(side_px, side_px, 3), dtype=np.uint8),
        anomaly_map=rng.random((64, 64), dtype=np.float32) * 6.0,
        image_score=4.0 if verdict == Verdict.ABNORMAL else 2.5,
        verdict=verdict,
        threshold=3.0,
        uncertain_low=2.0,
        model=ModelIdentity("bench", "1", "00" * 32),
        latency_ms=1.0,
    )


@dataclass
class Committed:
    """Commit times of stored messages, filled by the collector's callback."""

    latencies_ms: list[float]
    count: int = 0

    def __call__(self, stored: list[tuple[str, int]]) -> None:
        now_ms = time.time() * 1000
        self.latencies_ms.extend(now_ms - captured for _, captured in stored)
        self.count += len(stored)


def _publisher(port: int, client_id: str = "", session: bool = False) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600 if session else 0
    client.connect("127.0.0.1", port, clean_start=not session, properties=properties)
    client.loop_start()
    return client


def collector_only(workdir: Path, db_url: str, messages: list) -> float:
    """Queue ``messages`` at the broker for a collector's session, then time the drain."""
    upgrade(db_url)
    broker = Broker(workdir, persistence=False)
    broker.start()
    settings = CollectorSettings(
        mqtt_url=broker.url,
        db_url=db_url,
        store_dir=workdir / "store",
        collector_id="bench-drain",
    )
    try:
        # A session subscribed and left without unsubscribing: the broker queues for it.
        session = _publisher(broker.port, settings.collector_id, session=True)
        subscribed = threading.Event()
        session.on_subscribe = lambda *_: subscribed.set()
        session.subscribe(shared_subscription(settings.share_group), qos=1)
        _until(subscribed.is_set, 10, "the session's subscription")
        session.disconnect()
        session.loop_stop()
        publisher = _publisher(broker.port)
        infos = [publisher.publish(m.topic, m.payload, qos=1) for m in messages]
        for info in infos:
            info.wait_for_publish(60)
        publisher.disconnect()
        publisher.loop_stop()
        engine = make_engine(db_url)
        committed = Committed([])
        collector = Collector(
            settings,
            make_session_factory(engine),
            BlobStore(settings.store_dir),
            on_commit=committed,
        )
        started = time.monotonic()
        collector.start()
        _until(lambda: committed.count >= len(messages), 600, f"{len(messages)} commits")
        rate = len(messages) / (time.monotonic() - started)
        collector.stop()
        engine.dispose()
    finally:
        broker.stop()
    return rate


class Rig:
    """One broker, one collector on one database, one edge sink."""

    def __init__(self, workdir: Path, db_url: str) -> None:
        self.workdir = workdir
        upgrade(db_url)  # before the broker starts, so a bad URL leaves no broker running
        self.broker = Broker(workdir, persistence=True)
        self.broker.start()
        self.engine = make_engine(db_url)
        self.committed = Committed([])
        settings = CollectorSettings(
            mqtt_url=self.broker.url,
            db_url=db_url,
            store_dir=workdir / "store",
            collector_id=f"bench-{workdir.name}",
            reconnect_max_delay_s=2,
        )
        self.collector = Collector(
            settings,
            make_session_factory(self.engine),
            BlobStore(settings.store_dir),
            on_commit=self.committed,
        )
        self.collector.start()
        if not self.collector.wait_subscribed(10):
            msg = "collector did not subscribe"
            raise TimeoutError(msg)
        config = MqttConfig.from_url(
            self.broker.url,
            outbox_dir=workdir / "outbox",
            reconnect_max_delay_s=2,
            inflight_window=64,
        )
        self.sink: MqttSink = build_mqtt_sink(config, IDENTITY, "127.0.0.1:50051")

    def throughput(self, messages: list[list[object]]) -> float:
        """Enqueue pre-encoded messages at once; return messages/s to the last commit."""
        start_count = self.committed.count
        total = sum(len(batch) for batch in messages)
        started = time.monotonic()
        for batch in messages:
            self.sink.outbox.put_many(batch)  # type: ignore[arg-type]
            self.sink.publisher.wake()
        _until(lambda: self.committed.count - start_count >= total, 600, f"{total} commits")
        return total / (time.monotonic() - started)

    def close(self) -> None:
        self.sink.close()
        self.collector.stop()
        self.engine.dispose()
        self.broker.stop()


def _encoded(first: int, count: int, verdict: Verdict, side_px: int, kinds: set[str]) -> list:
    batches = []
    for index in range(first, first + count):
        found = frame_messages(_frame(index, verdict, side_px), IDENTITY)
        batches.append([m for m in found if m.kind in kinds])
    return batches


def bench_collector(label: str, db_url: str, args: argparse.Namespace, rows: list) -> None:
    alerts = [
        m
        for batch in _encoded(5 * 10**6, args.alerts, Verdict.ABNORMAL, 64, {"alert"})
        for m in batch
    ]
    samples = [
        m
        for batch in _encoded(6 * 10**6, args.samples * 2, Verdict.UNCERTAIN, 592, {"sample"})
        for m in batch
    ]
    for kind, messages in (("alerts", alerts), ("samples", samples)):
        with tempfile.TemporaryDirectory(prefix="lw-drain-") as folder:
            rate = collector_only(Path(folder), db_url, messages)
        run = f"collector {kind}" + (" 1 MB" if kind == "samples" else "")
        rows.append(
            (label, run, len(messages), f"{rate:.0f} msg/s (before: {BEFORE[(label, kind)]} msg/s)")
        )


def bench_database(label: str, db_url: str, args: argparse.Namespace, rows: list) -> None:
    with tempfile.TemporaryDirectory(prefix="lw-bench-") as folder:
        rig = Rig(Path(folder), db_url)
        try:
            alerts = _encoded(0, args.alerts, Verdict.ABNORMAL, 64, {"alert"})
            rate = rig.throughput(alerts)
            rows.append((label, "via edge sink: alerts", args.alerts, rate))
            # ~1 MB samples: 592x592 noise does not compress, PNG ≈ 1.05 MB.
            big = _encoded(10**6, args.samples, Verdict.UNCERTAIN, 592, {"sample"})
            size_mb = len(big[0][0].payload) / 1e6
            rate = rig.throughput(big)
            rows.append((label, f"via edge sink: {size_mb:.2f} MB", args.samples, rate))
            rig.committed.latencies_ms.clear()
            pace = threading.Event()
            for index in range(args.latency_frames):  # steady 20 frames/s, alert + sample
                rig.sink.handle(_frame(2 * 10**6 + index, Verdict.ABNORMAL, 128))
                pace.wait(0.05)
            expected = 2 * args.latency_frames
            _until(lambda: len(rig.committed.latencies_ms) >= expected, 60, "latency rows")
            latencies = sorted(rig.committed.latencies_ms)
            p50 = statistics.median(latencies)
            p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
            rows.append((label, "latency 20 fps", expected, f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"))
        finally:
            rig.close()


def bench_outage(db_url: str, args: argparse.Namespace, rows: list) -> None:
    with tempfile.TemporaryDirectory(prefix="lw-outage-") as folder:
        rig = Rig(Path(folder), db_url)
        try:
            start = rig.committed.count
            rig.broker.stop()
            pace = threading.Event()
            handled = 0
            ends = time.monotonic() + args.outage_s
            while time.monotonic() < ends:  # the node keeps flagging at 10 frames/s
                verdict = Verdict.ABNORMAL if handled % 2 == 0 else Verdict.UNCERTAIN
                rig.sink.handle(_frame(3 * 10**6 + handled, verdict, 128))
                handled += 1
                pace.wait(0.1)
            backlog = rig.sink.outbox.backlog
            expected = handled + (handled + 1) // 2
            rig.broker.start()
            restarted = time.monotonic()
            _until(lambda: rig.committed.count - start >= expected, 300, "the backlog drained")
            drain_s = time.monotonic() - restarted
            with make_session_factory(rig.engine)() as session:
                alerts = session.scalar(select(func.count()).select_from(Alert))
                samples = session.scalar(select(func.count()).select_from(Sample))
            once = (
                "exactly once" if (alerts, samples) == ((handled + 1) // 2, handled) else "MISMATCH"
            )
            rows.append(
                (
                    "sqlite",
                    f"outage {args.outage_s:.0f}s drain",
                    backlog,
                    f"{backlog / drain_s:.0f} msg/s ({drain_s:.1f} s after restart, {once})",
                )
            )
        finally:
            rig.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="postgresql:// URL of an empty or Linewatch database")
    parser.add_argument("--outage-s", type=float, default=30.0)
    parser.add_argument("--alerts", type=int, default=500)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--latency-frames", type=int, default=100)
    args = parser.parse_args()
    rows: list = []
    with tempfile.TemporaryDirectory(prefix="lw-db-") as folder:
        bench_collector("sqlite", f"sqlite:///{folder}/drain.db", args, rows)
        if args.postgres:
            bench_collector("postgresql", args.postgres, args, rows)
        bench_database("sqlite", f"sqlite:///{folder}/bench.db", args, rows)
        if args.postgres:
            bench_database("postgresql", args.postgres, args, rows)
        bench_outage(f"sqlite:///{folder}/outage.db", args, rows)
    print(f"{'database':<11} {'run':<24} {'messages':>8}  result")
    for database, run, count, result in rows:
        shown = f"{result:.1f} msg/s" if isinstance(result, float) else result
        print(f"{database:<11} {run:<24} {count:>8}  {shown}")


if __name__ == "__main__":
    main()

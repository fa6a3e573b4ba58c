"""`linewatch collect --metrics` serves metrics; `linewatch db rejected` lists dead letters."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from cloud.demo.processes import free_port
from edge.frames import Heartbeat
from edge.mqtt.messages import build_status
from edge.runtime.mqtt_link import MessageKind, NodeIdentity, topic_for
from tests.plugins.mqtt import Broker, RawPublisher, wait_for

pytestmark = pytest.mark.e2e

LINEWATCH = str(Path(sys.executable).parent / "linewatch")
NODE = NodeIdentity("plant1", "line2", "cam3")


def _metrics(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            return str(answer.read().decode())
    except OSError:
        return ""  # not listening yet


def test_collect_serves_metrics_and_db_rejected_lists_what_was_set_aside(
    mosquitto: Broker, raw_publisher: RawPublisher, tmp_path: Path
) -> None:
    db_url = f"sqlite:///{tmp_path / 'linewatch.db'}"
    port = free_port()
    command = [LINEWATCH, "collect", "--mqtt", mosquitto.url, "--db", db_url]
    command += ["--store", str(tmp_path / "store"), "--metrics", f"127.0.0.1:{port}"]
    with (tmp_path / "collect.log").open("wb") as log:
        collector = subprocess.Popen(command, stderr=log, cwd=tmp_path)
    try:
        wait_for(lambda: "linewatch_collector_inbox_depth" in _metrics(port), 30, "metrics")
        status_topic = topic_for(NODE, MessageKind.STATUS)
        forged = build_status(
            NODE,
            online=True,
            grpc_address="",
            heartbeat=Heartbeat(),
            sent_at_ms=253_402_300_799_000,
        )

        def rejected_counted() -> bool:  # published until the collector is subscribed
            raw_publisher.publish(status_topic, forged.SerializeToString())
            return 'linewatch_collector_rejected_total{kind="status"}' in _metrics(port)

        wait_for(rejected_counted, 30, "the forged status counted as rejected")
        assert "linewatch_collector_commit_seconds_bucket" in _metrics(port)
    finally:
        collector.send_signal(signal.SIGTERM)
        collector.wait(timeout=30)
    assert collector.returncode == 0, (tmp_path / "collect.log").read_text()
    assert "rejected=" in (tmp_path / "collect.log").read_text()

    listed = subprocess.run(
        [LINEWATCH, "db", "rejected", "--db", db_url, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert rows
    assert rows[0]["topic"] == status_topic
    assert "sent_at_ms" in rows[0]["reason"]
    assert "payload" not in rows[0]  # the bytes stay in the table


def test_a_bad_metrics_address_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [LINEWATCH, "collect", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--metrics", "nowhere"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: metrics address 'nowhere'")

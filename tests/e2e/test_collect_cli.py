"""`linewatch db upgrade`, `collect`, `alerts list`, `samples list`, run as a user runs them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from cloud.db.migrate import head_revision
from cloud.db.models import Node
from cloud.db.session import make_engine, make_session_factory
from edge.runtime.policy import Verdict
from tests.plugins.mqtt import Broker, FrameFactory, SinkFactory, wait_for

pytestmark = pytest.mark.e2e

LINEWATCH = str(Path(sys.executable).parent / "linewatch")


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINEWATCH, *args], capture_output=True, text=True, cwd=cwd, timeout=60, check=False
    )


def _listed(kind: str, db_url: str, cwd: Path, *flags: str) -> list[dict[str, object]]:
    result = _run(kind, "list", "--db", db_url, "--json", *flags, cwd=cwd)
    assert result.returncode == 0, result.stderr
    listed: list[dict[str, object]] = json.loads(result.stdout)
    return listed


def test_collect_then_list_alerts_and_samples(
    mosquitto: Broker,
    start_sink: SinkFactory,
    make_frame: FrameFactory,
    tmp_path: Path,
) -> None:
    db_url = f"sqlite:///{tmp_path / 'data' / 'linewatch.db'}"
    upgraded = _run("db", "upgrade", "--db", db_url, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"revision {head_revision()}" in upgraded.stdout

    sink = start_sink(mosquitto.url, heartbeat_interval_s=0.2)
    command = ["collect", "--mqtt", mosquitto.url, "--db", db_url, "--store", str(tmp_path / "s")]
    with (tmp_path / "collect.log").open("wb") as log:
        collector = subprocess.Popen([LINEWATCH, *command], stderr=log, cwd=tmp_path)
    try:
        # The node's heartbeat in the database proves the collector is subscribed.
        wait_for(
            lambda: (
                _run("samples", "list", "--db", db_url, cwd=tmp_path).returncode == 0
                and "online" in _node_state(db_url)
            ),
            30,
            "the collector to store the node's status",
        )
        frames = [make_frame(v) for v in (Verdict.ABNORMAL, Verdict.UNCERTAIN, Verdict.NORMAL)]
        for frame in frames:
            sink.handle(frame)
        wait_for(lambda: len(_listed("samples", db_url, tmp_path)) == 2, 20, "two samples listed")
    finally:
        collector.send_signal(signal.SIGTERM)
        collector.wait(timeout=20)
    assert collector.returncode == 0, (tmp_path / "collect.log").read_text()

    (alert,) = _listed("alerts", db_url, tmp_path, "--node", "cam3", "--since", "1h")
    assert alert["frame_id"] == frames[0].frame_id
    assert isinstance(alert["id"], str) and alert["id"]
    assert _listed("alerts", db_url, tmp_path, "--node", "elsewhere") == []
    (uncertain,) = _listed("samples", db_url, tmp_path, "--verdict", "uncertain", "--unreviewed")
    assert uncertain["frame_id"] == frames[1].frame_id
    assert (tmp_path / "s" / str(uncertain["image_path"])).is_file()
    assert _listed("samples", db_url, tmp_path, "--reviewed") == []
    table = _run("alerts", "list", "--db", db_url, cwd=tmp_path)
    assert str(alert["id"]) in table.stdout


def _node_state(db_url: str) -> str:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            online = session.scalar(select(Node.online))
    finally:
        engine.dispose()
    return "online" if online else "offline"


def test_listing_a_database_that_does_not_exist_says_what_to_do(tmp_path: Path) -> None:
    result = _run("alerts", "list", "--db", f"sqlite:///{tmp_path / 'none.db'}", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: database")
    assert "linewatch db upgrade" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_a_bad_since_is_a_usage_error(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'linewatch.db'}"
    assert _run("db", "upgrade", "--db", db_url, cwd=tmp_path).returncode == 0
    result = _run("alerts", "list", "--db", db_url, "--since", "yesterday-ish", cwd=tmp_path)
    assert result.returncode == 2
    assert "--since" in result.stderr


def test_a_bad_mqtt_url_is_one_line(tmp_path: Path) -> None:
    result = _run("collect", "--mqtt", "http://nowhere", "--db", "sqlite://", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: MQTT URL")

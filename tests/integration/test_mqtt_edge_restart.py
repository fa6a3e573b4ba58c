"""A node killed with a backlog in its outbox delivers it after a restart; its last will fires."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cloud.db.models import Alert, Node, Sample
from cloud.db.session import make_engine, make_session_factory
from edge.mqtt.outbox import Outbox
from tests.plugins.mqtt import Broker, CollectorFactory, wait_for

pytestmark = pytest.mark.integration

# The node process: "fill" flags frames while the broker is down, then waits to be
# killed; "drain" opens the same outbox, sends the backlog, then waits to be killed.
NODE_PROGRAM = """
import sys
from pathlib import Path
from edge.mqtt.config import MqttConfig
from edge.mqtt.sink import build_mqtt_sink
from edge.runtime.mqtt_link import NodeIdentity
from edge.runtime.policy import Verdict
from tests.plugins.mqtt import build_frame

mode, url, outbox_dir, count = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
config = MqttConfig.from_url(url, outbox_dir=outbox_dir, heartbeat_interval_s=0.2,
                             reconnect_max_delay_s=1)
identity = NodeIdentity(site="plant1", line="line2", node="cam3")
sink = build_mqtt_sink(config, identity, "127.0.0.1:50051")
if mode == "fill":
    for index in range(count):
        sink.handle(build_frame(index, [Verdict.ABNORMAL, Verdict.UNCERTAIN][index % 2]))
    print("queued", sink.counters().backlog, flush=True)
else:
    print("drained" if sink.wait_drained(30) else "timeout", flush=True)
sys.stdin.read()  # until killed
"""


def _node(mode: str, broker: Broker, outbox_dir: Path, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", NODE_PROGRAM, mode, broker.url, str(outbox_dir), str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )


def _kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()


def _count(db_url: str, table: type[Alert] | type[Sample]) -> int:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            return int(session.scalar(select(func.count()).select_from(table)) or 0)
    finally:
        engine.dispose()


def _online(db_url: str) -> bool | None:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            return session.scalar(select(Node.online))
    finally:
        engine.dispose()


def test_killed_node_delivers_its_backlog_after_restart(
    tmp_path: Path, sqlite_url: str, start_collector: CollectorFactory
) -> None:
    broker = Broker(tmp_path / "broker")  # not started yet: the node cannot send
    outbox_dir = tmp_path / "outbox"
    frames = 40
    filler = _node("fill", broker, outbox_dir, frames)
    try:
        assert filler.stdout is not None
        assert filler.stdout.readline().split() == ["queued", str(frames * 3 // 2)]
    finally:
        _kill(filler)
    assert filler.returncode == -signal.SIGKILL
    backlog = Outbox(outbox_dir, quota_bytes=1 << 30)
    assert backlog.backlog == frames * 3 // 2  # 20 alerts + 40 samples survived the kill
    backlog.close()

    broker.start()
    try:
        start_collector(broker.url, sqlite_url)
        drainer = _node("drain", broker, outbox_dir, 0)
        try:
            assert drainer.stdout is not None
            assert drainer.stdout.readline().strip() == "drained"
            wait_for(
                lambda: (_count(sqlite_url, Alert), _count(sqlite_url, Sample)) == (20, 40),
                20,
                "the whole backlog in the database",
            )
            wait_for(lambda: _online(sqlite_url) is True, 10, "the node marked online")
        finally:
            _kill(drainer)
        wait_for(lambda: _online(sqlite_url) is False, 10, "the last will marking it offline")
    finally:
        broker.stop()

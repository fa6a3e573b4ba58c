"""A node started with an MQTT URL ships its flagged camera frames to the collector."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cloud.db import make_engine, make_session_factory, upgrade
from cloud.db.queries import list_alerts, list_nodes, list_samples
from edge.node import EdgeNode
from edge.runtime.bundle import ModelBundle
from edge.settings import EdgeSettings
from tests.plugins.mqtt import Broker, CollectorFactory, wait_for

pytestmark = pytest.mark.integration


def _camera_folder(folder: Path) -> Path:
    folder.mkdir()
    levels = [128, 255, 128, 180, 0, 128]  # normal, abnormal, normal, uncertain, abnormal, normal
    for index, level in enumerate(levels):
        cv2.imwrite(str(folder / f"{index:02d}.png"), np.full((64, 64), level, np.uint8))
    return folder


def test_flagged_frames_reach_the_database(
    tmp_path: Path,
    mosquitto: Broker,
    start_collector: CollectorFactory,
    tiny_bundle: ModelBundle,
    edge_settings: EdgeSettings,
) -> None:
    db_url = f"sqlite:///{tmp_path / 'linewatch.db'}"
    upgrade(db_url)
    start_collector(mosquitto.url, db_url)
    settings = edge_settings.model_copy(
        update={
            "camera": str(_camera_folder(tmp_path / "camera")),
            "mqtt_url": mosquitto.url,
            "outbox_dir": tmp_path / "outbox",
            "site": "plant1",
            "line": "line3",
            "node": "cam-07",
        }
    )
    node = EdgeNode(settings)
    node.load(tiny_bundle)
    port = node.start()
    sessions = make_session_factory(make_engine(db_url))

    def stored() -> bool:
        with sessions() as session:
            return len(list_alerts(session)) == 2 and len(list_samples(session)) == 3

    try:
        wait_for(stored, 20.0, "2 alerts and 3 samples in the database")
        with sessions() as session:
            nodes = list_nodes(session)
            verdicts = sorted(sample.verdict for sample in list_samples(session))
    finally:
        node.stop()
    assert verdicts == ["abnormal", "abnormal", "uncertain"]
    assert [(n.site, n.line, n.node) for n in nodes] == [("plant1", "line3", "cam-07")]
    assert nodes[0].grpc_address == f"127.0.0.1:{port}"

"""The broker ACL in deploy/mosquitto/acl on a real Mosquitto: one identity per node.

A node logged in as itself publishes under its own topics only: it cannot speak
for another node, and it reads nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from tests.plugins.mqtt import Broker, wait_for

pytestmark = pytest.mark.integration

ACL = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "acl"
PASSWORDS = {"cam-07": "pw-07", "cam-08": "pw-08", "collector": "pw-c"}
SHARED = "$share/linewatch-collectors/linewatch/#"


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[Broker]:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.skip("mosquitto_passwd is not installed (apt-get install mosquitto)")
    password_file = tmp_path / "passwd"
    for index, (user, password) in enumerate(PASSWORDS.items()):
        create = ["-c"] if index == 0 else []
        subprocess.run([tool, "-b", *create, str(password_file), user, password], check=True)
    password_file.chmod(0o600)
    broker = Broker(
        tmp_path / "broker",
        secure_options=[f"password_file {password_file}", f"acl_file {ACL}"],
    )
    broker.start()
    yield broker
    broker.stop()


class _Client:
    """A bare MQTT 5 client that records what the broker answers."""

    def __init__(self, broker: Broker, user: str) -> None:
        self.connected = threading.Event()
        self.published: dict[int, ReasonCode] = {}
        self.subscribed: dict[int, list[ReasonCode]] = {}
        self.received: list[str] = []
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=user, protocol=MQTTProtocolVersion.MQTTv5
        )
        self._client.username_pw_set(user, PASSWORDS[user])
        self._client.on_connect = lambda *args: self.connected.set()
        self._client.on_publish = self._on_publish
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = lambda _c, _u, message: self.received.append(message.topic)
        self._client.connect("127.0.0.1", broker.port)
        self._client.loop_start()
        assert self.connected.wait(5.0)

    def _on_publish(self, _c: object, _u: object, mid: int, code: ReasonCode, _p: object) -> None:
        self.published[mid] = code

    def _on_subscribe(
        self, _c: object, _u: object, mid: int, codes: list[ReasonCode], _p: object
    ) -> None:
        self.subscribed[mid] = codes

    def publish(self, topic: str) -> ReasonCode:
        mid = self._client.publish(topic, b"x", qos=1).mid
        wait_for(lambda: mid in self.published, 5.0, f"PUBACK for {topic}")
        return self.published[mid]

    def subscribe(self, topic: str) -> ReasonCode:
        _, mid = self._client.subscribe(topic, qos=1)
        assert mid is not None
        wait_for(lambda: mid in self.subscribed, 5.0, f"SUBACK for {topic}")
        return self.subscribed[mid][0]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def clients(acl_broker: Broker) -> Iterator[dict[str, _Client]]:
    made = {user: _Client(acl_broker, user) for user in PASSWORDS}
    yield made
    for client in made.values():
        client.close()


def test_a_node_publishes_under_its_own_topics_only(clients: dict[str, _Client]) -> None:
    collector = clients["collector"]
    assert not collector.subscribe(SHARED).is_failure
    node = clients["cam-07"]

    assert not node.publish("linewatch/plant1/line3/cam-07/alert").is_failure
    spoofed = node.publish("linewatch/plant1/line3/cam-08/alert")
    assert spoofed.is_failure
    assert node.publish("linewatch/plant1/line3/cam-07/anything").is_failure

    wait_for(lambda: len(collector.received) == 1, 5.0, "the node's own alert")
    assert collector.received == ["linewatch/plant1/line3/cam-07/alert"]


def test_a_node_reads_nothing(clients: dict[str, _Client]) -> None:
    reader, node = clients["cam-08"], clients["cam-07"]
    reader.subscribe("linewatch/#")
    node.publish("linewatch/plant1/line3/cam-07/status")
    clients["collector"].subscribe("linewatch/#")
    node.publish("linewatch/plant1/line3/cam-07/alert")
    wait_for(lambda: len(clients["collector"].received) == 1, 5.0, "the alert at the collector")
    assert reader.received == []

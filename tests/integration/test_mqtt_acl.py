"""The broker's access file (``linewatch broker access``) on a real Mosquitto.

A node logged in as itself publishes under its own topics only: it cannot speak
for another node, it reads nothing, and it cannot join the collectors' share
group (which, with a plain ``acl_file``, made the broker drop the messages it
picked the node for).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode
from typer.testing import CliRunner

from cloud.cli.app import app
from cloud.cli.commands.broker import password_variable
from tests.plugins.mqtt import Broker, wait_for

pytestmark = pytest.mark.integration

PASSWORDS = {"cam-07": "pw-07", "cam-08": "pw-08", "collector": "pw-c"}
SHARED = "$share/linewatch-collectors/linewatch/#"
PLUGIN_PLACES = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
)


def _plugin() -> Path:
    for place in PLUGIN_PLACES:
        if Path(place).is_file():
            return Path(place)
    pytest.skip("Mosquitto's dynamic-security plugin is not installed (apt-get install mosquitto)")


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[Broker]:
    plugin = _plugin()
    access = tmp_path / "dynamic-security.json"
    env = {password_variable(user): password for user, password in PASSWORDS.items()}
    result = CliRunner().invoke(
        app,
        ["broker", "access", "--out", str(access), "--node", "cam-07", "--node", "cam-08"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert access.stat().st_mode & 0o077 == 0, "the password hashes are readable by others"
    broker = Broker(
        tmp_path / "broker",
        secure_options=[f"plugin {plugin}", f"plugin_opt_config_file {access}"],
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


def test_a_node_cannot_join_the_collectors_share_group(clients: dict[str, _Client]) -> None:
    collector, intruder, node = clients["collector"], clients["cam-08"], clients["cam-07"]
    assert not collector.subscribe(SHARED).is_failure
    assert intruder.subscribe(SHARED).is_failure  # refused, so the broker never picks it

    for _ in range(10):
        assert not node.publish("linewatch/plant1/line3/cam-07/alert").is_failure
    wait_for(lambda: len(collector.received) == 10, 5.0, "all ten alerts at the collector")
    assert intruder.received == []


def test_a_wrong_password_is_refused(acl_broker: Broker) -> None:
    refused = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="cam-07", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.username_pw_set("cam-07", "not-its-password")
    client.on_connect = lambda _c, _u, _f, code, _p: refused.set() if code.is_failure else None
    client.connect("127.0.0.1", acl_broker.port)
    client.loop_start()
    try:
        assert refused.wait(5.0)
    finally:
        client.loop_stop()

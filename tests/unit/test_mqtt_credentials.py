"""Broker credentials: taken from the URL by node and collector alike, never shown."""

from __future__ import annotations

import pytest

from cloud.collector.settings import CollectorSettings
from edge.mqtt.config import MqttConfig
from edge.runtime.errors import ConfigError
from edge.runtime.mqtt_link import BrokerAddress
from edge.settings import EdgeSettings


def test_broker_passwords_stay_out_of_reprs_and_log_urls() -> None:
    url = "mqtts://cam3:hunter2@broker.plant:8883"
    config = MqttConfig.from_url(url)
    address = CollectorSettings(mqtt_url=url).broker
    assert (config.username, config.password) == ("cam3", "hunter2")
    assert (address.username, address.password) == ("cam3", "hunter2")
    assert config.address == address.display == "mqtts://cam3@broker.plant:8883"
    shown = [
        repr(config),
        repr(address),
        repr(CollectorSettings(mqtt_url=url, mqtt_password="hunter2")),
        repr(EdgeSettings(mqtt_password="hunter2")),
    ]
    assert not [text for text in shown if "hunter2" in text]


def test_a_bad_mqtt_url_error_does_not_echo_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        BrokerAddress.from_url("http://cam3:hunter2@broker.plant:8883")
    assert "hunter2" not in str(caught.value)
    assert "broker.plant" in str(caught.value)


def test_flags_override_the_credentials_in_the_url_on_both_sides() -> None:
    url = "mqtt://cam3:hunter2@broker.plant"
    config = MqttConfig.from_url(url, username="cam9", password="s3cret")
    settings = CollectorSettings(mqtt_url=url, mqtt_user="cam9", mqtt_password="s3cret")
    assert (config.username, config.password) == ("cam9", "s3cret")
    assert (settings.broker.username, settings.broker.password) == ("cam9", "s3cret")
    assert config.broker == settings.broker

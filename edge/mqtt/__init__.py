"""Alerts and samples over MQTT, through a durable on-disk outbox."""

from edge.mqtt.config import MqttConfig
from edge.mqtt.messages import build_alert, build_sample, build_status, frame_messages
from edge.mqtt.outbox import Outbox, OutboxCounters, OutboxMessage, ShedRank
from edge.mqtt.publisher import OutboxPublisher, StatusSource
from edge.mqtt.sink import MqttSink, build_mqtt_sink

__all__ = [
    "MqttConfig",
    "MqttSink",
    "Outbox",
    "OutboxCounters",
    "OutboxMessage",
    "OutboxPublisher",
    "ShedRank",
    "StatusSource",
    "build_alert",
    "build_mqtt_sink",
    "build_sample",
    "build_status",
    "frame_messages",
]

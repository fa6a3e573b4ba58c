"""The collector's MQTT side: a persistent shared subscription, an inbox, manual acks.

It joins ``$share/<group>/linewatch/+/+/+/+`` so that several collectors split
the stream, with a persistent MQTT 5 session (fixed client id,
``clean_start=False``, a session expiry) so the broker queues what arrives while
the collector is down. paho's manual acknowledgement holds every PUBACK until
the writer says the message is committed (or set aside).

Only paho's loop thread runs the callbacks here; they do no more than queue
the message, so the loop keeps reading the socket while the writer commits.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cloud.collector.metrics import CollectorMetrics
from cloud.collector.prepare import Inbound, kind_of_topic
from cloud.collector.settings import CollectorSettings
from cloud.db.models import utc_now
from edge.runtime.mqtt_link import build_client, shared_subscription

__all__ = ["Subscription"]

logger = logging.getLogger(__name__)


class Subscription:
    """Connects, subscribes, fills the inbox, and acknowledges what the writer finished."""

    def __init__(
        self, settings: CollectorSettings, inbox: queue.Queue[Inbound], metrics: CollectorMetrics
    ) -> None:
        """Build the paho client; nothing connects before ``start``.

        Raises:
            ConfigError: an MQTT URL that cannot be parsed.
        """
        self._settings = settings
        self._address = settings.broker
        self._inbox = inbox
        self._metrics = metrics
        self._topic = shared_subscription(settings.share_group)
        self._generation = 0
        self._failed_connects = 0
        self._stopping = threading.Event()
        self.subscribed = threading.Event()
        self._unsubscribed = threading.Event()
        self._client = self._make_client()

    def start(self) -> None:
        """Connect in the background (paho's loop thread); returns at once."""
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self._settings.session_expiry_s
        properties.ReceiveMaximum = self._settings.receive_maximum
        self._client.connect_async(
            self._address.host,
            self._address.port,
            keepalive=self._settings.keepalive_s,
            clean_start=False,
            properties=properties,
        )
        self._client.loop_start()

    def leave(self, timeout_s: float) -> bool:
        """Unsubscribe so the share group routes new messages to the others.

        Returns:
            True when the broker confirmed (or nothing was subscribed).
        """
        if not (self._client.is_connected() and self.subscribed.is_set()):
            return True
        self._unsubscribed.clear()
        self._client.unsubscribe(self._topic)
        return self._unsubscribed.wait(timeout_s)

    def close(self) -> None:
        """Disconnect and stop paho's loop thread."""
        self._stopping.set()
        self._client.disconnect()
        self._client.loop_stop()

    def acknowledge(self, batch: list[Inbound]) -> None:
        """Send the PUBACKs of a batch that is committed or set aside.

        Messages from an older connection are not acknowledged on this one: their
        packet ids may now name other messages. The broker resends them.
        """
        generation = self._generation
        for item in batch:
            if item.generation == generation:
                self._client.ack(item.mid, item.qos)

    def _make_client(self) -> mqtt.Client:
        settings = self._settings
        client = build_client(
            settings.collector_id,
            self._address,
            tls_ca=settings.mqtt_tls_ca,
            manual_ack=True,
            reconnect_min_delay_s=1,
            reconnect_max_delay_s=settings.reconnect_max_delay_s,
        )
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        client.on_message = self._on_message
        return client

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            logger.error(
                "broker refused the collector url=%s reason=%s; check credentials",
                self._address.display,
                reason_code,
            )
            return
        self._failed_connects = 0
        self._generation += 1
        client.subscribe(self._topic, qos=1)
        logger.info(
            "collector connected url=%s session_present=%s subscribing=%s",
            self._address.display,
            flags.session_present,
            self._topic,
        )

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho retries quietly; say it once per outage (and then every 20th try).
        self._failed_connects += 1
        if self._failed_connects % 20 == 1:
            logger.warning(
                "collector cannot connect to the broker url=%s attempts=%d: check the address, "
                "that it listens, and for TLS the CA file and the name in its certificate",
                self._address.display,
                self._failed_connects,
            )

    def _on_unsubscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self.subscribed.clear()
        self._unsubscribed.set()

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if any(code.is_failure for code in reason_codes):
            logger.error("broker refused the subscription reasons=%s", reason_codes)
            return
        self.subscribed.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.subscribed.clear()
        if not self._stopping.is_set():
            logger.warning("collector lost the broker reason=%s; reconnecting", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        topic = message.topic
        self._metrics.received.labels(kind=kind_of_topic(topic)).inc()
        self._inbox.put(
            Inbound(
                topic=topic,
                payload=bytes(message.payload),
                mid=message.mid,
                qos=message.qos,
                generation=self._generation,
                received_at=utc_now(),
            )
        )

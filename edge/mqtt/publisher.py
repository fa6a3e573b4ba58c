"""Drains the outbox to the broker, oldest first, deleting a row only after its PUBACK.

A PUBACK whose MQTT 5 reason code says "no matching subscribers" does not count:
the broker accepted the message but no collector session holds it, so it would
be lost; the row stays and is sent again after a short pause.

paho-mqtt (MQTT 5, QoS 1) owns the socket and reconnects with backoff; one
background thread moves rows from the outbox into paho, never more than
``inflight_window`` unacknowledged at a time, and publishes the retained status
heartbeat. paho keeps unacknowledged QoS 1 messages across a reconnect and
resends them itself, so a row stays "in flight" until its PUBACK and is not sent
twice by us; after a restart the outbox still has it and it is sent again (the
collector drops the duplicate by message id).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.frames import Heartbeat
from edge.mqtt.config import MqttConfig
from edge.mqtt.messages import build_offline_status, build_status
from edge.mqtt.outbox import Outbox
from edge.runtime.mqtt_link import MessageKind, NodeIdentity, build_client, topic_for

__all__ = ["OutboxPublisher", "StatusSource"]

logger = logging.getLogger(__name__)

StatusSource = Callable[[], Heartbeat]
_IDLE_WAKE_S = 0.5
_NO_MATCHING_SUBSCRIBERS = 0x10  # MQTT 5 PUBACK reason code
_HOLD_MIN_S = 0.25
_HOLD_MAX_S = 5.0
_STOP_GRACE_S = 5.0


class OutboxPublisher:
    """Sends what the outbox holds whenever the broker is reachable."""

    def __init__(
        self,
        config: MqttConfig,
        outbox: Outbox,
        identity: NodeIdentity,
        *,
        grpc_address: str,
        status_source: StatusSource,
    ) -> None:
        """Prepare the client; nothing connects before ``start``.

        Args:
            config: broker, credentials, pacing.
            outbox: where the messages wait.
            identity: the node, for topics and the status payload.
            grpc_address: the node's gRPC address, announced in the status.
            status_source: returns the node's counters and active model for each heartbeat.
        """
        self._config = config
        self._outbox = outbox
        self._identity = identity
        self._grpc_address = grpc_address
        self._status_source = status_source
        self._status_topic = topic_for(identity, MessageKind.STATUS)
        self._lock = threading.Condition()
        self._inflight: dict[int, int | None] = {}  # paho mid -> outbox seq (None: status)
        self._early_acks: dict[int, ReasonCode] = {}
        self._connected = False
        self._stopping = False
        self._next_heartbeat = 0.0
        self._hold_s = 0.0
        self._hold_until = 0.0
        self._thread: threading.Thread | None = None
        self.published = 0
        self.acknowledged = 0
        self._failed_connects = 0
        self._client = self._make_client()

    @property
    def connected(self) -> bool:
        """Whether the broker accepted our connection and it is up."""
        return self._connected

    def start(self) -> None:
        """Connect in the background and start draining; returns at once."""
        self._client.connect_async(
            self._config.host,
            self._config.port,
            keepalive=self._config.keepalive_s,
            clean_start=True,
        )
        self._client.loop_start()
        self._thread = threading.Thread(
            target=self._drain_forever, name=f"outbox-drain-{self._identity.node}", daemon=True
        )
        self._thread.start()

    def wake(self) -> None:
        """Tell the drainer that the outbox has new rows."""
        with self._lock:
            self._lock.notify_all()

    def wait_drained(self, timeout_s: float) -> bool:
        """Block until the outbox is empty and nothing is in flight; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._outbox.backlog > 0 or any(v is not None for v in self._inflight.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, _IDLE_WAKE_S))
        return True

    def stop(self, *, announce_offline: bool = True) -> None:
        """Stop draining, say OFFLINE (retained), disconnect; unsent rows stay in the outbox."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=_STOP_GRACE_S)
        if announce_offline and self._connected:
            offline = build_offline_status(self._identity, self._grpc_address)
            offline.sent_at_ms = int(time.time() * 1000)
            info = self._client.publish(
                self._status_topic, offline.SerializeToString(), qos=1, retain=True
            )
            self._register(info.mid, None)
            try:
                info.wait_for_publish(timeout=_STOP_GRACE_S)
            except RuntimeError:
                logger.warning("offline status not sent node=%s", self._identity.node)
        self._client.disconnect()
        self._client.loop_stop()

    def _make_client(self) -> mqtt.Client:
        config = self._config
        identity = self._identity
        client_id = (
            config.client_id or f"linewatch-edge-{identity.site}-{identity.line}-{identity.node}"
        )
        client = build_client(
            client_id,
            config.broker,
            tls_ca=config.tls_ca,
            reconnect_min_delay_s=config.reconnect_min_delay_s,
            reconnect_max_delay_s=config.reconnect_max_delay_s,
        )
        will = build_offline_status(identity, self._grpc_address)
        client.will_set(self._status_topic, will.SerializeToString(), qos=1, retain=True)
        client.max_inflight_messages_set(config.inflight_window + 2)  # + status heartbeats
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho retries quietly; say it once per outage (and then every 20th try).
        self._failed_connects += 1
        if self._failed_connects % 20 == 1:
            logger.warning(
                "cannot connect to the broker url=%s attempts=%d backlog kept: check the "
                "address, that it listens, and for TLS the CA file and the name in its "
                "certificate",
                self._config.address,
                self._failed_connects,
            )

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
                "broker refused the connection host=%s port=%d reason=%s; check credentials",
                self._config.host,
                self._config.port,
                reason_code,
            )
            return
        logger.info("connected to broker host=%s port=%d", self._config.host, self._config.port)
        self._failed_connects = 0
        with self._lock:
            self._connected = True
            self._next_heartbeat = 0.0  # announce ONLINE at once
            self._lock.notify_all()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            self._connected = False
        if not self._stopping:
            logger.warning(
                "lost the broker host=%s reason=%s backlog=%d; will reconnect",
                self._config.host,
                reason_code,
                self._outbox.backlog,
            )

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        # paho calls this holding its own lock: never publish from here.
        with self._lock:
            if mid not in self._inflight:
                self._early_acks[mid] = reason_code  # PUBACK before publish() returned
                return
            self._settle(mid, reason_code)

    def _register(self, mid: int, seq: int | None) -> None:
        with self._lock:
            self._inflight[mid] = seq
            early = self._early_acks.pop(mid, None)
            if early is not None:
                self._settle(mid, early)

    def _settle(self, mid: int, reason_code: ReasonCode) -> None:
        seq = self._inflight.pop(mid)
        if seq is None:  # a status heartbeat: retained, nothing to delete
            self._lock.notify_all()
            return
        if reason_code.is_failure or reason_code.value == _NO_MATCHING_SUBSCRIBERS:
            # Kept: an accepted message that reached no subscriber is lost, e.g. after a
            # broker restart, before the collectors subscribed again (Mosquitto 2.0 does
            # not restore shared subscriptions from persistence). Resend after a pause.
            now = time.monotonic()
            if now >= self._hold_until:  # one longer pause per round, not per message
                self._hold_s = min(self._hold_s * 2, _HOLD_MAX_S) if self._hold_s else _HOLD_MIN_S
                self._hold_until = now + self._hold_s
                logger.warning(
                    "broker did not deliver seq=%d reason=%s; resending in %.1fs",
                    seq,
                    reason_code,
                    self._hold_s,
                )
        else:
            self._outbox.delete(seq)
            self.acknowledged += 1
            self._hold_s = 0.0
        self._lock.notify_all()

    def _drain_forever(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                self._lock.wait(_IDLE_WAKE_S if self._outbox.backlog == 0 else 0.05)
                if self._stopping:
                    return
                if not self._connected:
                    continue
                busy = frozenset(seq for seq in self._inflight.values() if seq is not None)
                room = self._config.inflight_window - len(busy)
            if time.monotonic() >= self._next_heartbeat:
                self._publish_status()
            if room > 0 and time.monotonic() >= self._hold_until:
                self._send(room, busy)

    def _send(self, room: int, busy: frozenset[int]) -> None:
        for message in self._outbox.pending(room, exclude=busy):
            info = self._client.publish(message.topic, message.payload, qos=1)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                logger.warning("publish refused seq=%d rc=%s; will retry", message.seq, info.rc)
                return
            self._register(info.mid, message.seq)
            self.published += 1

    def _publish_status(self) -> None:
        self._next_heartbeat = time.monotonic() + self._config.heartbeat_interval_s
        status = build_status(
            self._identity,
            online=True,
            grpc_address=self._grpc_address,
            heartbeat=self._status_source(),
            outbox_backlog=self._outbox.backlog,
        )
        info = self._client.publish(
            self._status_topic, status.SerializeToString(), qos=1, retain=True
        )
        self._register(info.mid, None)

"""``MqttSink``: the node's verdict sink that sends flagged frames to the cloud.

``handle`` only encodes and writes to the durable outbox, so the camera loop is
never held up by the network; the publisher thread does the sending.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

from edge.frames import Heartbeat, InspectedFrame, ModelIdentity
from edge.mqtt.config import MqttConfig
from edge.mqtt.messages import frame_messages
from edge.mqtt.outbox import Outbox, OutboxCounters
from edge.mqtt.publisher import OutboxPublisher, StatusSource
from edge.runtime.mqtt_link import NodeIdentity
from edge.runtime.policy import Verdict

__all__ = ["MqttSink", "build_mqtt_sink"]

logger = logging.getLogger(__name__)


class MqttSink:
    """Abnormal → Alert + Sample, uncertain → Sample, normal → counted only."""

    def __init__(
        self,
        outbox: Outbox,
        publisher: OutboxPublisher,
        identity: NodeIdentity,
    ) -> None:
        """Wrap a started publisher and its outbox; ``build_mqtt_sink`` is the usual way in."""
        self.outbox = outbox
        self.publisher = publisher
        self._identity = identity
        self._lock = threading.Lock()
        self._frames_processed = 0
        self._model: ModelIdentity | None = None

    def handle(self, frame: InspectedFrame) -> None:
        """Write a flagged frame's messages to the outbox; returns before any network I/O.

        Raises:
            OutboxError: the outbox could not store them (the caller decides what to do).
        """
        messages = frame_messages(frame, self._identity)
        if messages:
            self.outbox.put_many(messages)
            self.publisher.wake()
        with self._lock:
            self._frames_processed += 1
            self._model = frame.model
        if frame.verdict == Verdict.ABNORMAL:
            logger.debug("alert queued node=%s frame_id=%s", self._identity.node, frame.frame_id)

    def status(self) -> Heartbeat:
        """What the sink has seen: frames handled and the last model, for the heartbeat."""
        with self._lock:
            return Heartbeat(frames_processed=self._frames_processed, model=self._model)

    def counters(self) -> OutboxCounters:
        """The outbox counters: enqueued, delivered, shed, backlog."""
        return self.outbox.counters()

    def wait_drained(self, timeout_s: float) -> bool:
        """Block until everything stored has been acknowledged by the broker."""
        return self.publisher.wait_drained(timeout_s)

    def close(self) -> None:
        """Announce OFFLINE, disconnect and close the outbox; unsent messages stay on disk."""
        self.publisher.stop()
        self.outbox.close()


def build_mqtt_sink(
    config: MqttConfig,
    identity: NodeIdentity,
    grpc_address: str,
    status_source: StatusSource | None = None,
) -> MqttSink:
    """Open the outbox, start the publisher and return the sink, ready for frames.

    Args:
        config: broker, credentials, outbox folder and quota.
        identity: site, line and node; they name the topics.
        grpc_address: announced in the status heartbeat.
        status_source: the node's own counters and active model for the heartbeat;
            they override what the sink counts itself, and the sink's last seen model
            stands in while the node reports none. None: the sink's own counts alone.

    Raises:
        OutboxError: the outbox folder or database cannot be opened.
    """
    outbox = Outbox(config.outbox_dir, config.outbox_quota_bytes)
    holder: list[MqttSink] = []

    def merged_status() -> Heartbeat:
        own = holder[0].status() if holder else Heartbeat()
        if status_source is None:
            return own
        node = status_source()
        return node if node.model is not None else replace(node, model=own.model)

    publisher = OutboxPublisher(
        config, outbox, identity, grpc_address=grpc_address, status_source=merged_status
    )
    sink = MqttSink(outbox, publisher, identity)
    holder.append(sink)
    publisher.start()
    return sink

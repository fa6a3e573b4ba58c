"""The collector: MQTT → database and image store, acknowledging only what is committed.

It joins the shared subscription ``$share/<group>/linewatch/+/+/+/+`` so that
several collectors split the stream, with a persistent MQTT 5 session (fixed
client id, ``clean_start=False``, a session expiry) so the broker queues what
arrives while it is down. paho's manual acknowledgement holds every PUBACK
until the batch holding the message has committed: a collector killed at any
moment loses nothing (the broker resends) and stores nothing twice (message ids
are primary keys, inserted with ON CONFLICT DO NOTHING).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cloud.collector.decode import Decoded, Rejected, decode
from cloud.collector.records import to_record
from cloud.collector.settings import CollectorSettings
from cloud.collector.store import BlobStore
from cloud.db.models import utc_now
from cloud.db.repository import AlertRecord, MessageWriter, SampleRecord
from cloud.errors import StoreError
from edge.runtime.mqtt_link import build_client, shared_subscription

__all__ = ["Collector", "CollectorStats"]

logger = logging.getLogger(__name__)

_RETRY_MIN_S = 0.2
_RETRY_MAX_S = 10.0
_QUEUE_POLL_S = 0.2


@dataclass(frozen=True)
class CollectorStats:
    """What the collector has done since it started (committed work only)."""

    received: int = 0
    alerts: int = 0
    samples: int = 0
    statuses: int = 0
    duplicates: int = 0
    malformed: int = 0
    batches: int = 0
    db_retries: int = 0


@dataclass(frozen=True)
class _Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int
    received_at: datetime


class Collector:
    """Subscribes, stores, acknowledges; run it with ``start``/``stop``."""

    def __init__(
        self,
        settings: CollectorSettings,
        session_factory: sessionmaker[Session],
        store: BlobStore,
        *,
        on_commit: Callable[[list[tuple[str, int]]], None] | None = None,
    ) -> None:
        """Prepare the MQTT client and the writer; nothing connects before ``start``.

        Args:
            settings: broker, identity, batching.
            session_factory: sessions on a migrated database.
            store: where images go.
            on_commit: called after each commit with ``(message id, captured_at_ms)`` of
                the alerts and samples it stored (the bench measures latency with it).

        Raises:
            ConfigError: an MQTT URL that cannot be parsed.
        """
        self._settings = settings
        self._address = settings.broker
        self._sessions = session_factory
        self._store = store
        self._on_commit = on_commit
        self._writer = MessageWriter()
        self._inbox: queue.Queue[_Inbound] = queue.Queue()
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._unsubscribed = threading.Event()
        self._topic = shared_subscription(settings.share_group)
        self._generation = 0
        self._stats = CollectorStats()
        self._stats_lock = threading.Lock()
        self._worker = threading.Thread(target=self._work, name="collector-writer", daemon=True)
        self._failed_connects = 0
        self._client = self._make_client()

    @property
    def stats(self) -> CollectorStats:
        """A snapshot of the counters."""
        with self._stats_lock:
            return self._stats

    def start(self) -> None:
        """Connect in the background and start writing; returns at once."""
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
        self._worker.start()

    def wait_subscribed(self, timeout_s: float) -> bool:
        """Block until the broker confirmed the subscription; False on timeout."""
        return self._subscribed.wait(timeout_s)

    def stop(self, *, drain_timeout_s: float = 10.0) -> None:
        """Leave the shared subscription, store what has arrived, then disconnect.

        The session is persistent, so a collector that simply disconnected would stay
        a member of the share group and the broker would keep routing part of the
        traffic into its queue, to wait for its return while its peers sit idle.
        Unsubscribing first hands all new messages to the others; what is already
        here is stored and acknowledged. Whatever is still unacknowledged after
        ``drain_timeout_s`` is resent by the broker when this collector comes back.
        """
        if self._client.is_connected() and self._subscribed.is_set():
            self._unsubscribed.clear()
            self._client.unsubscribe(self._topic)
            if self._unsubscribed.wait(drain_timeout_s):
                self._wait_drained(drain_timeout_s)
            else:
                logger.warning("broker did not confirm leaving the share group; stopping anyway")
        self._stop.set()
        if self._worker.is_alive():
            self._worker.join()
        self._client.disconnect()
        self._client.loop_stop()

    def _wait_drained(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self._inbox.unfinished_tasks:
            if time.monotonic() > deadline:
                logger.warning("stopping with messages unstored; the broker resends them")
                return
            time.sleep(0.02)  # polls the writer thread's progress

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
        # Messages queued from an older connection must not be acknowledged on this one:
        # their packet ids may now name other messages. The broker resends them.
        self._generation += 1
        topic = self._topic
        client.subscribe(topic, qos=1)
        logger.info(
            "collector connected url=%s session_present=%s subscribing=%s",
            self._address.display,
            flags.session_present,
            topic,
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
        self._subscribed.clear()
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
        self._subscribed.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._subscribed.clear()
        if not self._stop.is_set():
            logger.warning("collector lost the broker reason=%s; reconnecting", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._inbox.put(
            _Inbound(
                topic=message.topic,
                payload=bytes(message.payload),
                mid=message.mid,
                qos=message.qos,
                generation=self._generation,
                received_at=utc_now(),
            )
        )

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._inbox.get(timeout=_QUEUE_POLL_S)
            except queue.Empty:
                continue
            batch = [first]
            while len(batch) < self._settings.batch_max:
                try:
                    batch.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            try:
                if self._commit_with_retry(batch):
                    self._acknowledge(batch)
            finally:
                for _ in batch:
                    self._inbox.task_done()  # stop() waits on these to leave nothing behind

    def _commit_with_retry(self, batch: list[_Inbound]) -> bool:
        delay_s = _RETRY_MIN_S
        while not self._stop.is_set():
            try:
                self._commit(batch)
                return True
            except (IntegrityError, DataError) as exc:
                logger.warning(
                    "batch refused, storing one by one size=%d error=%s", len(batch), exc
                )
                for item in batch:
                    self._commit_alone(item)
                return True
            except (SQLAlchemyError, StoreError) as exc:
                logger.error(
                    "cannot store batch size=%d (%s); retry in %.1fs", len(batch), exc, delay_s
                )
                self._count(db_retries=1)
                self._stop.wait(delay_s)
                delay_s = min(delay_s * 2, _RETRY_MAX_S)
        return False

    def _commit_alone(self, item: _Inbound) -> None:
        try:
            self._commit([item])
        except (IntegrityError, DataError) as exc:
            logger.warning(
                "message refused by the database, skipped topic=%s error=%s", item.topic, exc
            )
            self._count(malformed=1)

    def _commit(self, batch: list[_Inbound]) -> None:
        counts: dict[str, int] = {"received": len(batch), "batches": 1}
        stored: list[tuple[str, int]] = []
        with self._sessions() as session:
            try:
                for item in batch:
                    outcome, decoded = self._apply(session, item)
                    counts[outcome] = counts.get(outcome, 0) + 1
                    if decoded is not None and outcome in ("alerts", "samples"):
                        captured_at_ms = int(decoded.message.captured_at_ms)
                        stored.append((decoded.message.id, captured_at_ms))
                session.commit()
            except BaseException:
                session.rollback()
                self._writer.rolled_back()
                raise
        self._writer.committed()
        self._count(**counts)
        if self._on_commit is not None:
            self._on_commit(stored)

    def _apply(self, session: Session, item: _Inbound) -> tuple[str, Decoded | None]:
        decoded = decode(item.topic, item.payload)
        if isinstance(decoded, Rejected):
            logger.warning(
                "malformed message skipped topic=%s size_bytes=%d reason=%s",
                item.topic,
                len(item.payload),
                decoded.reason,
            )
            return "malformed", None
        return self._store_decoded(session, decoded, item.received_at), decoded

    def _store_decoded(self, session: Session, decoded: Decoded, received_at: datetime) -> str:
        record = to_record(decoded, received_at, self._store)
        if isinstance(record, AlertRecord):
            new = self._writer.add_alert(session, record)
            return "alerts" if new else "duplicates"
        if isinstance(record, SampleRecord):
            new = self._writer.add_sample(session, record)
            return "samples" if new else "duplicates"
        self._writer.apply_status(session, record)
        return "statuses"

    def _acknowledge(self, batch: list[_Inbound]) -> None:
        for item in batch:
            if item.generation == self._generation:
                self._client.ack(item.mid, item.qos)

    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            current = self._stats
            self._stats = replace(
                current, **{k: getattr(current, k) + v for k, v in increments.items()}
            )

"""The collector: MQTT → database and image store, acknowledging only what is committed.

Two halves share an inbox. ``Subscription`` (paho's loop thread) joins the
shared subscription with a persistent session and queues every message;
``BatchWriter`` (one thread) stores batches and hands the committed ones back
for their PUBACKs. A collector killed at any moment loses nothing (the broker
resends what was not acknowledged) and stores nothing twice (message ids are
primary keys, inserted with ON CONFLICT DO NOTHING). A message that cannot be
stored is set aside in ``rejected_messages`` and acknowledged, so no message
can stop storage.
"""

from __future__ import annotations

import logging
import queue
import time

from sqlalchemy.orm import Session, sessionmaker

from cloud.collector.metrics import CollectorMetrics
from cloud.collector.prepare import Inbound, Preparer
from cloud.collector.settings import CollectorSettings
from cloud.collector.stats import CollectorStats, Tally
from cloud.collector.store import BlobStore
from cloud.collector.subscription import Subscription
from cloud.collector.writer import BatchLimits, BatchWriter, CommitCallback

__all__ = ["Collector", "CollectorStats"]

logger = logging.getLogger(__name__)

_DRAIN_POLL_S = 0.02


class Collector:
    """Subscribes, stores, acknowledges; run it with ``start``/``stop``."""

    def __init__(
        self,
        settings: CollectorSettings,
        session_factory: sessionmaker[Session],
        store: BlobStore,
        *,
        on_commit: CommitCallback | None = None,
        metrics: CollectorMetrics | None = None,
    ) -> None:
        """Prepare the MQTT client and the writer; nothing connects before ``start``.

        Args:
            settings: broker, identity, batching.
            session_factory: sessions on a migrated database.
            store: where images go.
            on_commit: called after each commit with ``(message id, captured_at_ms)`` of
                the alerts and samples it stored (the bench measures latency with it).
            metrics: where to count; a private registry when None.

        Raises:
            ConfigError: an MQTT URL that cannot be parsed.
        """
        self.metrics = metrics or CollectorMetrics()
        self._inbox: queue.Queue[Inbound] = queue.Queue()
        self._tally = Tally()
        self._store = store
        self._subscription = Subscription(settings, self._inbox, self.metrics)
        self._preparer = Preparer(
            store,
            collector_id=settings.collector_id,
            max_future_ms=int(settings.max_clock_skew_s * 1000),
            payload_keep_bytes=settings.rejected_payload_max_bytes,
            store_workers=settings.store_workers,
        )
        self._writer = BatchWriter(
            self._inbox,
            session_factory,
            self._preparer,
            BatchLimits(settings.batch_max, settings.batch_max_bytes, settings.batch_wait_ms / 1e3),
            acknowledge=self._subscription.acknowledge,
            tally=self._tally,
            metrics=self.metrics,
            on_commit=on_commit,
        )
        self.metrics.inbox_depth.set_function(self._inbox.qsize)

    @property
    def stats(self) -> CollectorStats:
        """A snapshot of the counters."""
        return self._tally.snapshot()

    def start(self) -> None:
        """Connect in the background and start writing; returns at once."""
        self._store.sweep_incoming()  # what a crash left half-written belongs to no row
        self._subscription.start()
        self._writer.start()

    def wait_subscribed(self, timeout_s: float) -> bool:
        """Block until the broker confirmed the subscription; False on timeout."""
        return self._subscription.subscribed.wait(timeout_s)

    def stop(self, *, drain_timeout_s: float = 10.0) -> None:
        """Leave the shared subscription, store what has arrived, then disconnect.

        The session is persistent, so a collector that simply disconnected would stay
        a member of the share group and the broker would keep routing part of the
        traffic into its queue, to wait for its return while its peers sit idle.
        Unsubscribing first hands all new messages to the others; what is already
        here is stored and acknowledged. Whatever is still unacknowledged after
        ``drain_timeout_s`` is resent by the broker when this collector comes back.
        """
        if self._subscription.leave(drain_timeout_s):
            self._wait_drained(drain_timeout_s)
        else:
            logger.warning("broker did not confirm leaving the share group; stopping anyway")
        self._writer.stop()
        self._subscription.close()
        self._preparer.close()

    def _wait_drained(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self._inbox.unfinished_tasks:
            if time.monotonic() > deadline:
                logger.warning("stopping with messages unstored; the broker resends them")
                return
            time.sleep(_DRAIN_POLL_S)  # polls the writer thread's progress

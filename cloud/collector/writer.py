"""The collector's writer: batches from the inbox, committed, then acknowledged.

One thread takes what has arrived (up to ``batch_max`` messages or
``batch_max_bytes``, waiting at most ``batch_wait_ms`` for more), prepares it
outside any transaction, writes it with one statement per table and commits.
Only then are the messages acknowledged, so a collector killed at any moment
loses nothing (the broker resends) and stores nothing twice (ids are keys).

The writer is supervised: no message can stop it. A database or store that is
down is retried with backoff until it is back. A batch the database refuses for
any other reason (a row it will not take, a bug) is logged and retried one
message at a time; a message that still fails is set aside in
``rejected_messages`` with the reason, and acknowledged.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from cloud.collector.metrics import CollectorMetrics
from cloud.collector.prepare import Inbound, Prepared, Preparer
from cloud.collector.stats import Tally
from cloud.db.repository import MessageWriter, StatusRecord
from cloud.errors import StoreError

__all__ = ["BatchLimits", "BatchWriter", "CommitCallback"]

logger = logging.getLogger(__name__)

CommitCallback = Callable[[list[tuple[str, int]]], None]

_RETRY_MIN_S = 0.2
_RETRY_MAX_S = 10.0
_QUEUE_POLL_S = 0.2
# Failures that pass: the database restarting or unreachable, a full disk.
_TRANSIENT = (OperationalError, InterfaceError, PoolTimeoutError, StoreError)


class BatchLimits:
    """How big a batch may grow and how long the writer waits to fill it."""

    def __init__(self, max_messages: int, max_bytes: int, wait_s: float) -> None:
        """Keep the three bounds."""
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.wait_s = wait_s


class BatchWriter:
    """The writer thread: ``start``, then ``stop`` after the inbox is drained."""

    def __init__(
        self,
        inbox: queue.Queue[Inbound],
        sessions: sessionmaker[Session],
        preparer: Preparer,
        limits: BatchLimits,
        *,
        acknowledge: Callable[[list[Inbound]], None],
        tally: Tally,
        metrics: CollectorMetrics,
        on_commit: CommitCallback | None = None,
    ) -> None:
        """Wire the writer to its inbox, database, preparer and acknowledgement."""
        self._inbox = inbox
        self._sessions = sessions
        self._preparer = preparer
        self._limits = limits
        self._acknowledge = acknowledge
        self._tally = tally
        self._metrics = metrics
        self._on_commit = on_commit
        self._writer = MessageWriter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="collector-writer", daemon=True)

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the batch in hand (its retries give up) and join the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._next_batch()
            if not batch:
                continue
            try:
                self._handle(batch)
            except Exception:  # the last guard: log, leave the batch unacknowledged, go on
                logger.exception(
                    "writer failed on a batch; the broker resends it size=%d first_topic=%s",
                    len(batch),
                    batch[0].topic,
                )
            finally:
                for _ in batch:
                    self._inbox.task_done()  # Collector.stop waits on these

    def _next_batch(self) -> list[Inbound]:
        try:
            first = self._inbox.get(timeout=_QUEUE_POLL_S)
        except queue.Empty:
            return []
        batch, size_bytes = [first], len(first.payload)
        deadline = time.monotonic() + self._limits.wait_s
        while len(batch) < self._limits.max_messages and size_bytes < self._limits.max_bytes:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                remaining_s = deadline - time.monotonic()
                if remaining_s <= 0:
                    break
                try:
                    item = self._inbox.get(timeout=remaining_s)
                except queue.Empty:
                    break
            batch.append(item)
            size_bytes += len(item.payload)
        self._metrics.inbox_depth.set(self._inbox.qsize())
        return batch

    def _handle(self, batch: list[Inbound]) -> None:
        delay_s = _RETRY_MIN_S
        while not self._stop.is_set():
            try:
                prepared = self._preparer.prepare(batch)
                self._store_supervised(prepared)
            except _TRANSIENT as exc:
                logger.error(
                    "cannot store batch size=%d (%s); retry in %.1fs", len(batch), exc, delay_s
                )
                self._tally.add(db_retries=1)
                self._metrics.db_retries.inc()
                self._stop.wait(delay_s)
                delay_s = min(delay_s * 2, _RETRY_MAX_S)
                continue
            self._acknowledge(batch)
            return

    def _store_supervised(self, prepared: list[Prepared]) -> None:
        try:
            self._commit(prepared)
        except _TRANSIENT:
            raise
        except Exception:
            logger.exception(
                "batch refused, storing one message at a time size=%d topics=%s",
                len(prepared),
                sorted({p.item.topic for p in prepared})[:10],
            )
            for one in prepared:
                self._store_alone(one)

    def _store_alone(self, one: Prepared) -> None:
        try:
            self._commit([one])
        except _TRANSIENT:
            raise
        except Exception as exc:
            logger.exception("message set aside: the database refused it topic=%s", one.item.topic)
            reason = f"database refused it ({type(exc).__name__}: {exc})"
            self._commit([self._preparer.reject(one.item, reason, by_database=True)])

    def _commit(self, prepared: list[Prepared]) -> None:
        started = time.perf_counter()
        with self._sessions() as session:
            try:
                outcome = self._writer.write_batch(session, [p.record for p in prepared])
                session.commit()
            except BaseException:
                session.rollback()
                self._writer.rolled_back()
                raise
        self._writer.committed()
        self._metrics.commit_latency.observe(time.perf_counter() - started)
        self._metrics.batch_size.observe(len(prepared))
        self._account(prepared, outcome.new_alert_ids | outcome.new_sample_ids)

    def _account(self, prepared: list[Prepared], new_ids: frozenset[str]) -> None:
        now_ms = time.time() * 1000.0
        counts = {"received": len(prepared), "batches": 1}
        stored: list[tuple[str, int]] = []
        for one in prepared:
            if one.rejected:
                counts["rejected"] = counts.get("rejected", 0) + 1
                if not one.refused_by_database:
                    counts["malformed"] = counts.get("malformed", 0) + 1
                self._metrics.rejected.labels(kind=one.kind).inc()
            elif isinstance(one.record, StatusRecord):
                counts["statuses"] = counts.get("statuses", 0) + 1
                self._observe_status(one.record)
            elif one.message_id in new_ids:
                counts[f"{one.kind}s"] = counts.get(f"{one.kind}s", 0) + 1
                self._metrics.stored.labels(kind=one.kind).inc()
                self._metrics.lag.observe(max(0.0, now_ms - one.captured_at_ms) / 1000.0)
                stored.append((one.message_id, one.captured_at_ms))
            else:
                counts["duplicates"] = counts.get("duplicates", 0) + 1
                self._metrics.duplicates.labels(kind=one.kind).inc()
        self._tally.add(**counts)
        if self._on_commit is not None:
            self._on_commit(stored)

    def _observe_status(self, record: StatusRecord) -> None:
        node = record.node
        gauge = self._metrics.node_outbox_backlog
        gauge.labels(site=node.site, line=node.line, node=node.node).set(record.outbox_backlog)

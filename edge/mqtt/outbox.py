"""The durable outbox: every message is on disk before it is sent, and gone only once acknowledged.

One SQLite file in WAL mode with ``synchronous=FULL``, so a message survives a
killed process and a power cut. One connection behind a lock is the single
writer; the sink appends and the publisher reads oldest first and deletes a row
when the broker has acknowledged it.

The outbox has a disk quota. Over it, rows are shed by rank, oldest first:
uncertain samples (rank 1), then the full-image samples of abnormal frames
(rank 2). Alerts (rank 0) are never shed: an alert may take the outbox over its
quota, because an operator must hear about every defect. Every shed row is counted.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from edge.runtime.errors import OutboxError

__all__ = ["OUTBOX_FILE", "Outbox", "OutboxCounters", "OutboxMessage", "ShedRank"]

logger = logging.getLogger(__name__)

OUTBOX_FILE = "outbox.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    size_bytes INTEGER NOT NULL,
    shed_rank INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_shed ON messages (shed_rank, seq) WHERE shed_rank > 0;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_COUNTER_NAMES = ("enqueued", "delivered", "shed_uncertain", "shed_abnormal_samples")


class ShedRank(IntEnum):
    """Which rows go first when the outbox is over its quota (0: never)."""

    NEVER = 0
    UNCERTAIN_SAMPLE = 1
    ABNORMAL_SAMPLE = 2


@dataclass(frozen=True)
class OutboxMessage:
    """One message waiting for the broker."""

    seq: int
    msg_id: str
    kind: str
    topic: str
    payload: bytes
    shed_rank: ShedRank = ShedRank.NEVER
    created_at_ms: int = 0


@dataclass(frozen=True)
class OutboxCounters:
    """What the outbox has done since it was created (kept across restarts)."""

    enqueued: int
    delivered: int
    shed_uncertain: int
    shed_abnormal_samples: int
    backlog: int
    backlog_bytes: int


class Outbox:
    """A SQLite-backed FIFO of messages with a disk quota; safe to share between threads."""

    def __init__(self, directory: Path, quota_bytes: int) -> None:
        """Open or create the outbox in ``directory``.

        Args:
            directory: folder of ``outbox.sqlite3``; created when missing.
            quota_bytes: payload bytes the outbox may hold before it sheds samples.

        Raises:
            OutboxError: the folder or the database cannot be created or opened.
        """
        self.path = directory / OUTBOX_FILE
        self.quota_bytes = quota_bytes
        self._lock = threading.Lock()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._db.executemany(
                "INSERT OR IGNORE INTO counters (name, value) VALUES (?, 0)",
                [(name,) for name in _COUNTER_NAMES],
            )
            row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM messages")
            self._backlog, self._backlog_bytes = row.fetchone()
        except (OSError, sqlite3.Error) as exc:
            msg = f"outbox {self.path}: cannot open ({exc}); check the folder and free disk"
            raise OutboxError(msg) from exc
        logger.info(
            "outbox open path=%s backlog=%d backlog_bytes=%d quota_bytes=%d",
            self.path,
            self._backlog,
            self._backlog_bytes,
            quota_bytes,
        )

    def put_many(self, messages: Sequence[OutboxMessage]) -> list[int]:
        """Store messages in one transaction, then shed samples while over the quota.

        The ``seq`` of the given messages is ignored; the returned list holds the
        assigned ones, in order.

        Raises:
            OutboxError: the write failed (disk full, database locked or damaged).
        """
        now_ms = int(time.time() * 1000)
        with self._lock:
            try:
                self._db.execute("PRAGMA synchronous=FULL")  # stored means on disk
                self._db.execute("BEGIN IMMEDIATE")
                seqs = [self._insert(message, now_ms) for message in messages]
                self._bump("enqueued", len(messages))
                self._shed_over_quota()
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                msg = f"outbox {self.path}: cannot store {len(messages)} message(s) ({exc})"
                raise OutboxError(msg) from exc
            return seqs

    def pending(self, limit: int, exclude: frozenset[int] = frozenset()) -> list[OutboxMessage]:
        """Return up to ``limit`` stored messages, oldest first, skipping ``exclude`` seqs."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, msg_id, kind, topic, payload, shed_rank, created_at_ms "
                "FROM messages ORDER BY seq LIMIT ?",
                (limit + len(exclude),),
            ).fetchall()
        found = [
            OutboxMessage(seq, msg_id, kind, topic, bytes(payload), ShedRank(rank), created)
            for seq, msg_id, kind, topic, payload, rank, created in rows
            if seq not in exclude
        ]
        return found[:limit]

    def delete(self, seq: int) -> bool:
        """Forget a message the broker acknowledged; False when it was already gone (shed)."""
        with self._lock:
            try:
                # A delete need not reach the platter at once: lost in a power cut, it only
                # means a resend, which the collector drops. The next insert (FULL) syncs it.
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute(
                    "DELETE FROM messages WHERE seq = ? RETURNING size_bytes", (seq,)
                ).fetchone()
                if row is not None:
                    self._backlog -= 1
                    self._backlog_bytes -= row[0]
                    self._bump("delivered", 1)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                msg = f"outbox {self.path}: cannot delete delivered message seq={seq} ({exc})"
                raise OutboxError(msg) from exc
        return row is not None

    def counters(self) -> OutboxCounters:
        """Return the counters and the current backlog."""
        with self._lock:
            values = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
            return OutboxCounters(
                enqueued=values["enqueued"],
                delivered=values["delivered"],
                shed_uncertain=values["shed_uncertain"],
                shed_abnormal_samples=values["shed_abnormal_samples"],
                backlog=self._backlog,
                backlog_bytes=self._backlog_bytes,
            )

    @property
    def backlog(self) -> int:
        """How many messages wait for the broker."""
        return int(self._backlog)

    def close(self) -> None:
        """Close the database; stored messages stay for the next start."""
        with self._lock:
            self._db.close()

    def _insert(self, message: OutboxMessage, now_ms: int) -> int:
        size = len(message.payload)
        cursor = self._db.execute(
            "INSERT INTO messages (msg_id, kind, topic, payload, size_bytes, shed_rank, "
            "created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                message.msg_id,
                message.kind,
                message.topic,
                message.payload,
                size,
                int(message.shed_rank),
                message.created_at_ms or now_ms,
            ),
        )
        self._backlog += 1
        self._backlog_bytes += size
        return int(cursor.lastrowid or 0)

    def _shed_over_quota(self) -> None:
        while self._backlog_bytes > self.quota_bytes:
            row = self._db.execute(
                "SELECT seq, msg_id, size_bytes, shed_rank FROM messages WHERE shed_rank > 0 "
                "ORDER BY shed_rank, seq LIMIT 1"
            ).fetchone()
            if row is None:
                logger.warning(
                    "outbox over quota with alerts only; keeping them path=%s "
                    "backlog_bytes=%d quota_bytes=%d",
                    self.path,
                    self._backlog_bytes,
                    self.quota_bytes,
                )
                return
            seq, msg_id, size, rank = row
            self._db.execute("DELETE FROM messages WHERE seq = ?", (seq,))
            self._backlog -= 1
            self._backlog_bytes -= size
            counter = (
                "shed_uncertain" if rank == ShedRank.UNCERTAIN_SAMPLE else "shed_abnormal_samples"
            )
            self._bump(counter, 1)
            logger.warning(
                "outbox over quota: shed msg_id=%s rank=%d size_bytes=%d", msg_id, rank, size
            )

    def _bump(self, name: str, by: int) -> None:
        self._db.execute("UPDATE counters SET value = value + ? WHERE name = ?", (by, name))

    def _rollback(self) -> None:
        # The in-memory totals moved with the failed transaction: read them back.
        try:
            self._db.execute("ROLLBACK")
            row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM messages")
            self._backlog, self._backlog_bytes = row.fetchone()
        except sqlite3.Error:
            logger.warning("outbox rollback failed path=%s", self.path, exc_info=True)

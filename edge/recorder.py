"""The node's local record: the last N verdicts and every flagged frame, on disk.

A ``VerdictSink``. Flagged frames (abnormal and uncertain) are written as two
PNGs (the frame, lossless, and its anomaly map) indexed in SQLite, so nothing
flagged is lost while the network or the MQTT side is down. The store has a
byte quota: when over it, the oldest *uncertain* frames go first; abnormal
frames are never shed; only a physically full disk can stop one being kept,
and then it is logged and counted.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from edge.frames import InspectedFrame
from edge.metrics import NodeMetrics
from edge.runtime.policy import Verdict
from edge.visualize import anomaly_map_png, encode_png

__all__ = ["FlaggedRecord", "LocalRecord", "VerdictRecord"]

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    frame_id TEXT NOT NULL, captured_at_ms INTEGER NOT NULL, verdict TEXT NOT NULL,
    image_score REAL NOT NULL, threshold REAL NOT NULL,
    model_name TEXT NOT NULL, model_version TEXT NOT NULL, latency_ms REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS flagged (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    frame_id TEXT NOT NULL, captured_at_ms INTEGER NOT NULL, verdict TEXT NOT NULL,
    image_score REAL NOT NULL, threshold REAL NOT NULL, uncertain_low REAL NOT NULL,
    model_name TEXT NOT NULL, model_version TEXT NOT NULL, model_sha256 TEXT NOT NULL,
    image_file TEXT NOT NULL, map_file TEXT NOT NULL, size_bytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS flagged_verdict_seq ON flagged (verdict, seq);
"""
_FLAGGED_COLUMNS = (
    "seq, frame_id, captured_at_ms, verdict, image_score, threshold, uncertain_low, "
    "model_name, model_version, image_file, map_file, size_bytes"
)
_FLUSH_INTERVAL_S = 1.0


@dataclass(frozen=True)
class VerdictRecord:
    """One line of the verdict history."""

    frame_id: str
    captured_at_ms: int
    verdict: Verdict
    image_score: float
    threshold: float
    model_name: str
    model_version: str
    latency_ms: float


@dataclass(frozen=True)
class FlaggedRecord:
    """A stored abnormal or uncertain frame and its files."""

    seq: int
    frame_id: str
    captured_at_ms: int
    verdict: Verdict
    image_score: float
    threshold: float
    uncertain_low: float
    model_name: str
    model_version: str
    image_path: Path
    anomaly_map_path: Path
    size_bytes: int


class LocalRecord:
    """Bounded on-disk record of decisions; thread-safe."""

    def __init__(
        self,
        directory: Path,
        *,
        keep_verdicts: int = 10_000,
        quota_bytes: int = 512 * 1024 * 1024,
        metrics: NodeMetrics | None = None,
        flush_every: int = 64,
    ) -> None:
        self.directory = directory
        self.frames_dir = directory / "frames"
        self.frames_dir.mkdir(parents=True, exist_ok=True)
        self.keep_verdicts = keep_verdicts
        self.quota_bytes = quota_bytes
        self.metrics = metrics
        self.flush_every = flush_every
        self.failures = 0
        self._lock = threading.Lock()
        self._db = sqlite3.connect(directory / "record.sqlite3", check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._pending: list[tuple[object, ...]] = []
        self._last_flush = time.monotonic()
        self._over_quota_logged = False
        row = self._db.execute("SELECT COALESCE(SUM(size_bytes), 0) FROM flagged").fetchone()
        self.used_bytes = int(row[0])

    def handle(self, frame: InspectedFrame) -> None:
        """Record the verdict; store the frame and its map when flagged."""
        row = (
            frame.frame_id,
            frame.captured_at_ms,
            frame.verdict.value,
            frame.image_score,
            frame.threshold,
            frame.model.name,
            frame.model.version,
            frame.latency_ms,
        )
        with self._lock:
            self._pending.append(row)
            if frame.verdict is not Verdict.NORMAL:
                self._store_flagged(frame)
                self._flush()
            elif (
                len(self._pending) >= self.flush_every
                or time.monotonic() - self._last_flush > _FLUSH_INTERVAL_S
            ):
                self._flush()

    def close(self) -> None:
        """Write what is pending and close the database."""
        with self._lock:
            self._flush()
            self._db.close()

    def recent_verdicts(self, limit: int = 100) -> list[VerdictRecord]:
        """The newest verdicts first."""
        with self._lock:
            self._flush()
            rows = self._db.execute(
                "SELECT frame_id, captured_at_ms, verdict, image_score, threshold, model_name, "
                "model_version, latency_ms FROM verdicts ORDER BY seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            VerdictRecord(r[0], r[1], Verdict(r[2]), r[3], r[4], r[5], r[6], r[7]) for r in rows
        ]

    def verdict_count(self) -> int:
        """How many verdicts the history holds (at most ``keep_verdicts``)."""
        with self._lock:
            self._flush()
            return int(self._db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0])

    def flagged_frames(self, verdict: Verdict | None = None) -> list[FlaggedRecord]:
        """Stored flagged frames, oldest first, optionally of one verdict."""
        query = f"SELECT {_FLAGGED_COLUMNS} FROM flagged"
        params: tuple[str, ...] = ()
        if verdict is not None:
            query += " WHERE verdict = ?"
            params = (verdict.value,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY seq", params).fetchall()
        return [self._flagged_record(row) for row in rows]

    def _flagged_record(self, r: tuple[object, ...]) -> FlaggedRecord:
        return FlaggedRecord(
            seq=int(r[0]),  # type: ignore[call-overload]
            frame_id=str(r[1]),
            captured_at_ms=int(r[2]),  # type: ignore[call-overload]
            verdict=Verdict(str(r[3])),
            image_score=float(r[4]),  # type: ignore[arg-type]
            threshold=float(r[5]),  # type: ignore[arg-type]
            uncertain_low=float(r[6]),  # type: ignore[arg-type]
            model_name=str(r[7]),
            model_version=str(r[8]),
            image_path=self.frames_dir / str(r[9]),
            anomaly_map_path=self.frames_dir / str(r[10]),
            size_bytes=int(r[11]),  # type: ignore[call-overload]
        )

    def _flush(self) -> None:
        if not self._pending:
            return
        try:
            with self._db:
                self._db.executemany(
                    "INSERT INTO verdicts (frame_id, captured_at_ms, verdict, image_score, "
                    "threshold, model_name, model_version, latency_ms) VALUES (?,?,?,?,?,?,?,?)",
                    self._pending,
                )
                self._db.execute(
                    "DELETE FROM verdicts WHERE seq <= (SELECT MAX(seq) FROM verdicts) - ?",
                    (self.keep_verdicts,),
                )
        except sqlite3.OperationalError as exc:  # "database or disk is full"
            self._fail("verdict history", exc)
        self._pending.clear()
        self._last_flush = time.monotonic()

    def _store_flagged(self, frame: InspectedFrame) -> None:
        stem = uuid.uuid4().hex  # never a file name from a client's frame_id
        image_file, map_file = f"{stem}.png", f"{stem}-map.png"
        try:
            image_bytes = encode_png(frame.image)
            map_bytes = anomaly_map_png(frame.anomaly_map, frame.threshold)
            (self.frames_dir / image_file).write_bytes(image_bytes)
            (self.frames_dir / map_file).write_bytes(map_bytes)
            size = len(image_bytes) + len(map_bytes)
            with self._db:
                self._db.execute(
                    f"INSERT INTO flagged ({_FLAGGED_COLUMNS[5:]}, model_sha256) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        frame.frame_id,
                        frame.captured_at_ms,
                        frame.verdict.value,
                        frame.image_score,
                        frame.threshold,
                        frame.uncertain_low,
                        frame.model.name,
                        frame.model.version,
                        image_file,
                        map_file,
                        size,
                        frame.model.model_sha256,
                    ),
                )
        except (OSError, sqlite3.OperationalError) as exc:
            for name in (image_file, map_file):
                self._remove(name)
            self._fail(f"flagged frame {frame.frame_id} ({frame.verdict.value})", exc)
            return
        self.used_bytes += size
        self._enforce_quota()

    def _enforce_quota(self) -> None:
        """Shed the oldest uncertain frames until under quota; never abnormal ones."""
        while self.used_bytes > self.quota_bytes:
            row = self._db.execute(
                "SELECT seq, image_file, map_file, size_bytes FROM flagged "
                "WHERE verdict = ? ORDER BY seq LIMIT 1",
                (Verdict.UNCERTAIN.value,),
            ).fetchone()
            if row is None:
                if not self._over_quota_logged:
                    logger.warning(
                        "record over quota with abnormal frames only, keeping them "
                        "used_bytes=%d quota_bytes=%d",
                        self.used_bytes,
                        self.quota_bytes,
                    )
                    self._over_quota_logged = True
                return
            seq, image_file, map_file, size = row
            with self._db:
                self._db.execute("DELETE FROM flagged WHERE seq = ?", (seq,))
            for name in (image_file, map_file):
                self._remove(name)
            self.used_bytes -= int(size)
        self._over_quota_logged = False

    def _remove(self, name: str) -> None:
        try:
            (self.frames_dir / name).unlink(missing_ok=True)
        except OSError as exc:
            logger.warning("local record cannot remove file=%s reason=%s", name, exc)

    def _fail(self, what: str, exc: Exception) -> None:
        self.failures += 1
        if self.metrics:
            self.metrics.record_failures.inc()
        logger.error(
            "local record cannot store %s (disk full?) directory=%s reason=%s",
            what,
            self.directory,
            exc,
        )

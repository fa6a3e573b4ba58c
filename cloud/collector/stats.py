"""The collector's running totals of committed work, readable from any thread."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

__all__ = ["CollectorStats", "Tally"]


@dataclass(frozen=True)
class CollectorStats:
    """What the collector has done since it started (committed work only).

    ``rejected`` counts every message set aside as a dead letter; ``malformed``
    the part of those refused before reaching the database (bad protobuf, a time
    out of range, a field too long).
    """

    received: int = 0
    alerts: int = 0
    samples: int = 0
    statuses: int = 0
    duplicates: int = 0
    malformed: int = 0
    rejected: int = 0
    batches: int = 0
    db_retries: int = 0


class Tally:
    """Adds to a ``CollectorStats`` under a lock; ``snapshot`` returns a frozen copy."""

    def __init__(self) -> None:
        """Start from zero."""
        self._stats = CollectorStats()
        self._lock = threading.Lock()

    def add(self, **increments: int) -> None:
        """Add to the named counters (names of ``CollectorStats`` fields)."""
        with self._lock:
            current = self._stats
            self._stats = replace(
                current, **{k: getattr(current, k) + v for k, v in increments.items()}
            )

    def snapshot(self) -> CollectorStats:
        """The counters now."""
        with self._lock:
            return self._stats

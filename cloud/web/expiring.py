"""A value recomputed at most once per interval: for figures that need not be live."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Expiring"]

_T = TypeVar("_T")


class Expiring(Generic[_T]):
    """Hold the last computed value for ``max_age_s`` seconds (thread-safe)."""

    def __init__(self, max_age_s: float) -> None:
        """Start empty."""
        self._max_age_s = max_age_s
        self._value: _T | None = None
        self._computed_at = float("-inf")
        self._lock = threading.Lock()

    def get(self, compute: Callable[[], _T]) -> _T:
        """Return the held value, or ``compute()`` it when it is older than the interval."""
        with self._lock:
            now = time.monotonic()
            if self._value is None or now - self._computed_at > self._max_age_s:
                self._value = compute()
                self._computed_at = now
            return self._value

"""How many calls of each kind the node's gRPC server holds open at once.

The server runs every call on one thread pool, and a streaming call keeps its
thread for as long as the stream is open. Without a cap, eight idle
``InspectStream`` calls took every thread and the health check (the liveness
probe) timed out. Inspections and model pushes therefore each get a bounded share
of the pool, and one thread is always left for health and reflection; a call over
its share is refused at once with RESOURCE_EXHAUSTED instead of queueing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["AdmissionLimits", "CallGate", "limits_for"]

_RESERVED_FOR_HEALTH = 1
_MODEL_CALLS = 2


@dataclass(frozen=True)
class AdmissionLimits:
    """Calls each service may hold open at once."""

    inspection_calls: int
    model_calls: int


def limits_for(grpc_workers: int) -> AdmissionLimits:
    """Split a pool of ``grpc_workers`` threads, keeping one free for health checks."""
    model_calls = min(_MODEL_CALLS, max(1, grpc_workers - 2))
    inspection_calls = max(1, grpc_workers - model_calls - _RESERVED_FOR_HEALTH)
    return AdmissionLimits(inspection_calls=inspection_calls, model_calls=model_calls)


class CallGate:
    """A non-blocking counter of open calls with a ceiling."""

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        self._open = 0
        self._lock = threading.Lock()

    @property
    def open_calls(self) -> int:
        """Calls admitted and not yet finished."""
        with self._lock:
            return self._open

    def try_enter(self) -> bool:
        """Admit one call if there is room; the caller must ``leave`` when it ends."""
        with self._lock:
            if self._open >= self.limit:
                return False
            self._open += 1
            return True

    def leave(self) -> None:
        """Mark one admitted call finished."""
        with self._lock:
            self._open -= 1

    def refusal(self) -> str:
        """The message a refused caller reads."""
        return (
            f"node busy: {self.limit} {self.name} calls already open; close idle streams "
            "or retry shortly"
        )

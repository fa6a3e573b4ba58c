"""MLflow reads with a deadline, so a registry that hangs costs a page seconds, not a worker.

MLflow's HTTP client retries a server that does not answer for minutes, and
its timeouts are process-wide environment variables. The web app instead runs
each read on a daemon thread and stops waiting at a deadline; the page then
says the registry did not answer. At most ``max_in_flight`` reads wait on MLflow
at once, so a dead registry cannot pile up threads one page view at a time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from cloud.errors import RegistryError

__all__ = ["RegistryReader"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class _Outcome(Generic[T]):
    """What the reading thread hands back: a value or the exception it raised."""

    done: threading.Event = field(default_factory=threading.Event)
    value: T | None = None
    error: BaseException | None = None


class RegistryReader:
    """Run MLflow reads on daemon threads and give up waiting after ``timeout_s``."""

    def __init__(self, timeout_s: float, max_in_flight: int = 4) -> None:
        """Read with a deadline of ``timeout_s``, at most ``max_in_flight`` reads at once."""
        self.timeout_s = timeout_s
        self._slots = threading.BoundedSemaphore(max_in_flight)

    def run(self, what: str, read: Callable[[], T]) -> T:
        """Return ``read()``, or raise when it does not finish within the deadline.

        Args:
            what: the read, for the message (``reading metal version 3``).
            read: the call that talks to MLflow; it runs on another thread.

        Raises:
            RegistryError: the deadline passed, every slot is held by reads still
                waiting on MLflow, or ``read`` raised it.
        """
        if not self._slots.acquire(blocking=False):
            msg = (
                f"MLflow: {what} not started; earlier reads are still waiting for the "
                "registry. Check that it is up, then reload"
            )
            raise RegistryError(msg)
        outcome: _Outcome[T] = _Outcome()
        worker = threading.Thread(
            target=self._work, args=(read, outcome), name="linewatch-registry-read", daemon=True
        )
        worker.start()
        if not outcome.done.wait(self.timeout_s):
            logger.warning("registry read timed out what=%s timeout_s=%s", what, self.timeout_s)
            msg = (
                f"MLflow did not answer within {self.timeout_s:g} s ({what}); check that the "
                "registry is up, then reload"
            )
            raise RegistryError(msg)
        if outcome.error is not None:
            raise outcome.error
        return outcome.value  # type: ignore[return-value]  # set whenever error is None

    def _work(self, read: Callable[[], T], outcome: _Outcome[T]) -> None:
        """Run ``read`` and hand back its result; the slot frees when MLflow lets go."""
        try:
            outcome.value = read()
        except BaseException as exc:  # handed to the waiting request, which re-raises it
            outcome.error = exc
        finally:
            self._slots.release()
            outcome.done.set()

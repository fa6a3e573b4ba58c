"""Work that must not slow the inspections: run it in a fresh thread at a lower CPU priority.

Loading, warming and parity-checking an incoming model takes the same cores as
the stream of inspections the old model is still serving. On Linux the nice
value is per thread, so a throwaway thread can lower its own priority (it cannot
raise it again without privileges, which is why the thread is thrown away) and
the scheduler then prefers the inspections whenever both want a core.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["BACKGROUND_NICENESS", "lower_this_threads_priority", "run_in_fresh_thread"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
BACKGROUND_NICENESS = 10  # CFS gives a nice-10 thread about a tenth of a nice-0 one's share


def lower_this_threads_priority(niceness: int = BACKGROUND_NICENESS) -> bool:
    """Raise the calling thread's nice value by ``niceness``; False where not possible."""
    if not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return False
    thread_id = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread_id)
        os.setpriority(os.PRIO_PROCESS, thread_id, min(19, current + niceness))
    except OSError as exc:  # a sandbox may refuse it; the work still runs, just not gently
        logger.debug("cannot lower thread priority reason=%s", exc)
        return False
    return True


def run_in_fresh_thread(work: Callable[[], T], *, name: str) -> T:
    """Run ``work`` in a new thread, wait for it, return its result or raise its error."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # handed to the caller's thread below
            failure.append(exc)

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]

"""Micro-batching: frames that wait at the same moment go through the model together.

There is no batching thread. A caller submits its frame and then waits for it;
a waiting caller that finds a free run slot (``max_runs`` batches may run at
once) takes what is queued for one model, up to ``batch_max`` frames, and runs
it for everyone. A frame alone in the queue is therefore run at once by its own
caller, with no hand-off to another thread: batch 1 costs what it did before.
A caller takes only its share of the queue when run slots are free and other
callers wait to drive (frames spread over the cores first: on a CPU with one
intra-op thread a batch of two takes one core twice as long, while two runs
take both cores). Batches therefore grow when every run slot is busy, or when
``batch_wait_ms`` is set and other frames are on their way (being decoded).

A batch never mixes models: each frame is queued with the model it was admitted
with, so a swap never moves a frame onto a model it was not decoded for. When a
whole batch fails, its frames are run one by one, so one bad frame fails alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["BatchRunner", "Batcher", "Ticket", "batch_share"]

logger = logging.getLogger(__name__)

M = TypeVar("M")  # the model a frame was admitted with (grouping is by identity)
X = TypeVar("X")  # one prepared frame
R = TypeVar("R")  # one frame's result

BatchRunner = Callable[[M, Sequence[X]], Sequence[R]]


class Ticket(Generic[R]):
    """One submitted frame: its result once a batch carrying it has run."""

    def __init__(self, drive: Callable[[Ticket[R]], None]) -> None:
        self._drive = drive
        self._result: R | None = None
        self._error: BaseException | None = None
        self._done = False

    def done(self) -> bool:
        """Whether the frame has its result (or its error)."""
        return self._done

    def result(self) -> R:
        """Wait for the frame's result, running queued batches while a run slot is free.

        Raises:
            Exception: whatever running this frame raised (alone, not its batch-mates').
        """
        self._drive(self)
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]  # set whenever done without error


def batch_share(queued: int, *, free_slots: int, free_drivers: int, batch_max: int) -> int:
    """How many queued frames one run takes: the queue split over the runs that can start.

    A run can start for each free slot that has a caller to drive it (the caller
    asking counts itself in ``free_drivers``). Spreading first keeps every core
    busy; the batch grows only past what the free runs can share.
    """
    runs = max(1, min(free_slots, free_drivers))
    return max(1, min(batch_max, -(-queued // runs)))


@dataclass(eq=False)
class _Entry(Generic[M, X, R]):
    model: M
    item: X
    ticket: Ticket[R]
    queued_at: float


class Batcher(Generic[M, X, R]):
    """Groups waiting frames by model into batches of at most ``batch_max``."""

    def __init__(
        self,
        run_batch: BatchRunner[M, X, R],
        *,
        batch_max: int = 8,
        batch_wait_ms: float = 0.0,
        max_runs: int = 2,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        """Set the batch bounds.

        Args:
            run_batch: runs frames of one model together; returns one result per frame,
                in order. May raise: the frames are then retried one by one.
            batch_max: most frames in one batch (1 turns batching off).
            batch_wait_ms: how long a batch may wait for frames still being decoded;
                0 runs whatever is queued at once.
            max_runs: batches running at the same time (keep it to the cores ONNX
                Runtime may use, so batches form instead of threads oversubscribing).
            on_batch: told the size of every batch run (a metrics histogram).
        """
        if batch_max < 1 or max_runs < 1 or batch_wait_ms < 0:
            msg = (
                f"batcher: batch_max {batch_max}, max_runs {max_runs} and batch_wait_ms "
                f"{batch_wait_ms} must be >= 1, >= 1 and >= 0"
            )
            raise ValueError(msg)
        self._run_batch = run_batch
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_ms / 1000.0
        self.max_runs = max_runs
        self._on_batch = on_batch
        self._changed = threading.Condition()
        self._queue: deque[_Entry[M, X, R]] = deque()
        self._running = 0
        self._incoming = 0
        self._driving = 0  # callers inside result(): running a batch or ready to

    @property
    def queued(self) -> int:
        """Frames submitted and not yet taken into a batch."""
        with self._changed:
            return len(self._queue)

    @contextmanager
    def incoming(self) -> Iterator[None]:
        """Mark a frame as on its way (decoding) so a forming batch may wait for it."""
        with self._changed:
            self._incoming += 1
        try:
            yield
        finally:
            with self._changed:
                self._incoming -= 1
                self._changed.notify_all()

    def submit(self, model: M, item: X) -> Ticket[R]:
        """Queue one frame for ``model``; call ``result()`` on the ticket to get it."""
        ticket: Ticket[R] = Ticket(self._drive)
        with self._changed:
            self._queue.append(_Entry(model, item, ticket, time.monotonic()))
            self._changed.notify_all()
        return ticket

    def help(self) -> None:
        """Run queued batches while a run slot is free, without waiting for any frame.

        A thread that queued frames for someone else to collect (a stream's decoder)
        calls this so the cores stay busy.
        """
        while (batch := self._take(block=False)) is not None:
            self._run(batch)

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Run everything queued and wait for running batches; True if done in time."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.help()
            with self._changed:
                if not self._queue and self._running == 0:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)

    def _drive(self, ticket: Ticket[R]) -> None:
        with self._changed:
            self._driving += 1
        try:
            while not ticket.done():
                batch = self._take(block=True, until_done=ticket)
                if batch is not None:
                    self._run(batch)
        finally:
            with self._changed:
                self._driving -= 1

    def _take(
        self, *, block: bool, until_done: Ticket[R] | None = None
    ) -> list[_Entry[M, X, R]] | None:
        """Claim a run slot and the next batch; None when there is nothing to run."""
        with self._changed:
            while True:
                if until_done is not None and until_done.done():
                    return None
                if self._queue and self._running < self.max_runs:
                    wait_s = self._wait_for_more()
                    if wait_s <= 0:
                        free_drivers = self._driving - self._running + (until_done is None)
                        share = batch_share(
                            len(self._queue),
                            free_slots=self.max_runs - self._running,
                            free_drivers=free_drivers,
                            batch_max=self.batch_max,
                        )
                        self._running += 1
                        return self._next_batch(share)
                    self._changed.wait(wait_s)
                    continue
                if not block:
                    return None
                self._changed.wait()

    def _wait_for_more(self) -> float:
        """Seconds still worth waiting for frames on their way; 0 to run now."""
        if self.batch_wait_s <= 0 or self._incoming == 0 or len(self._queue) >= self.batch_max:
            return 0.0
        return self._queue[0].queued_at + self.batch_wait_s - time.monotonic()

    def _next_batch(self, limit: int) -> list[_Entry[M, X, R]]:
        """The oldest frame's model, and up to ``limit`` frames of it in queue order."""
        model = self._queue[0].model
        batch: list[_Entry[M, X, R]] = []
        kept: deque[_Entry[M, X, R]] = deque()
        while self._queue:
            entry = self._queue.popleft()
            if len(batch) < limit and entry.model is model:
                batch.append(entry)
            else:
                kept.append(entry)
        self._queue = kept
        return batch

    def _run(self, batch: list[_Entry[M, X, R]]) -> None:
        try:
            if self._on_batch is not None:
                self._on_batch(len(batch))
            self._settle(batch)
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    def _settle(self, batch: list[_Entry[M, X, R]]) -> None:
        """Run a batch; if it fails as a whole, run its frames alone so only bad ones fail."""
        model = batch[0].model
        try:
            results = list(self._run_batch(model, [entry.item for entry in batch]))
            if len(results) != len(batch):
                msg = f"batcher: {len(results)} results for a batch of {len(batch)} frames"
                raise ValueError(msg)
        except Exception as exc:  # handed to each frame's caller, never swallowed
            if len(batch) == 1:
                self._finish(batch[0], None, exc)
                return
            logger.info("batch failed, running its frames alone size=%d reason=%s", len(batch), exc)
            for entry in batch:
                self._settle([entry])
            return
        for entry, result in zip(batch, results, strict=True):
            self._finish(entry, result, None)

    def _finish(
        self, entry: _Entry[M, X, R], result: R | None, error: BaseException | None
    ) -> None:
        with self._changed:
            entry.ticket._result = result
            entry.ticket._error = error
            entry.ticket._done = True

"""Batcher: order, grouping by model, one bad frame, batch bounds, draining at shutdown."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from edge.batcher import Batcher, batch_share


class Recorder:
    """A real batch function: doubles numbers, refuses negatives, remembers every batch.

    ``hold`` keeps the first run inside the function until set, so a test can pile
    frames up behind a busy run slot.
    """

    def __init__(self, *, hold: bool = False) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, model: str, items: Sequence[int]) -> list[int]:
        self.batches.append((model, list(items)))
        self.entered.set()
        assert self.release.wait(10.0)
        if any(item < 0 for item in items):
            msg = f"negative frame in {list(items)}"
            raise ValueError(msg)
        return [item * 2 for item in items]


def _occupy(batcher: Batcher[str, int, int], recorder: Recorder) -> threading.Thread:
    """Start a run that holds the only run slot until ``recorder.release`` is set."""
    ticket = batcher.submit("a", 0)
    thread = threading.Thread(target=ticket.result, daemon=True)
    thread.start()
    assert recorder.entered.wait(10.0)
    return thread


def test_a_lone_frame_runs_at_once_in_the_callers_thread() -> None:
    ran_in: list[int] = []

    def run(model: str, items: Sequence[int]) -> list[int]:
        ran_in.append(threading.get_ident())
        return [item + 1 for item in items]

    batcher: Batcher[str, int, int] = Batcher(run, batch_max=8, batch_wait_ms=50.0)
    assert batcher.submit("a", 41).result() == 42
    assert ran_in == [threading.get_ident()]


def test_frames_waiting_together_run_as_one_batch_in_order() -> None:
    recorder = Recorder(hold=True)
    batcher: Batcher[str, int, int] = Batcher(recorder, batch_max=8, max_runs=1)
    first = _occupy(batcher, recorder)
    tickets = [batcher.submit("a", item) for item in range(1, 6)]
    recorder.release.set()
    assert [ticket.result() for ticket in tickets] == [2, 4, 6, 8, 10]
    first.join(10.0)
    assert recorder.batches == [("a", [0]), ("a", [1, 2, 3, 4, 5])]


@pytest.mark.parametrize(
    ("queued", "free_slots", "free_drivers", "share"),
    [
        (1, 2, 1, 1),  # a lone frame runs alone, at once
        (2, 2, 2, 1),  # two callers, two free slots: two runs side by side
        (2, 2, 1, 2),  # nobody else to drive the second run: batch them
        (8, 2, 2, 4),  # split the queue over both cores
        (8, 1, 3, 8),  # one free slot: everything waiting goes in
        (20, 1, 1, 8),  # never past batch_max
    ],
)
def test_a_run_takes_its_share_of_the_queue(
    queued: int, free_slots: int, free_drivers: int, share: int
) -> None:
    assert (
        batch_share(queued, free_slots=free_slots, free_drivers=free_drivers, batch_max=8) == share
    )


def test_batches_never_exceed_batch_max() -> None:
    recorder = Recorder(hold=True)
    batcher: Batcher[str, int, int] = Batcher(recorder, batch_max=3, max_runs=1)
    first = _occupy(batcher, recorder)
    tickets = [batcher.submit("a", item) for item in range(1, 8)]
    recorder.release.set()
    assert [ticket.result() for ticket in tickets] == [2 * item for item in range(1, 8)]
    first.join(10.0)
    assert [items for _, items in recorder.batches] == [[0], [1, 2, 3], [4, 5, 6], [7]]


def test_a_batch_holds_one_model_and_each_frame_keeps_its_own() -> None:
    recorder = Recorder(hold=True)
    batcher: Batcher[str, int, int] = Batcher(recorder, batch_max=8, max_runs=1)
    first = _occupy(batcher, recorder)
    # A swap happened between these frames: old "a", then new "b", then a late "a".
    tickets = [batcher.submit(model, item) for model, item in [("a", 1), ("b", 2), ("a", 3)]]
    recorder.release.set()
    assert [ticket.result() for ticket in tickets] == [2, 4, 6]
    first.join(10.0)
    assert recorder.batches == [("a", [0]), ("a", [1, 3]), ("b", [2])]


def test_one_bad_frame_fails_alone() -> None:
    recorder = Recorder(hold=True)
    batcher: Batcher[str, int, int] = Batcher(recorder, batch_max=8, max_runs=1)
    first = _occupy(batcher, recorder)
    good_before, bad, good_after = (batcher.submit("a", item) for item in (1, -1, 2))
    recorder.release.set()
    assert good_before.result() == 2
    assert good_after.result() == 4
    with pytest.raises(ValueError, match="negative frame in \\[-1\\]"):
        bad.result()
    first.join(10.0)
    assert recorder.batches[1] == ("a", [1, -1, 2])  # tried together first, then alone


def test_a_wrong_number_of_results_fails_the_frames_instead_of_hanging() -> None:
    batcher: Batcher[str, int, int] = Batcher(lambda model, items: [], batch_max=4)
    with pytest.raises(ValueError, match="0 results for a batch of 1"):
        batcher.submit("a", 1).result()


def test_a_forming_batch_waits_for_frames_still_decoding_up_to_the_bound() -> None:
    recorder = Recorder()
    batcher: Batcher[str, int, int] = Batcher(
        recorder, batch_max=4, batch_wait_ms=5_000.0, max_runs=1
    )
    decoding, decoded = threading.Event(), threading.Event()
    answers: list[int] = []

    def second_frame() -> None:
        with batcher.incoming():
            decoding.set()
            decoded.wait(10.0)
            ticket = batcher.submit("a", 2)
        answers.append(ticket.result())

    late = threading.Thread(target=second_frame)
    with batcher.incoming():  # the first frame's own decode
        first = batcher.submit("a", 1)
    late.start()
    assert decoding.wait(10.0)
    runner = threading.Thread(target=lambda: answers.append(first.result()))
    runner.start()
    decoded.set()  # the second frame arrives while the first waits for company
    runner.join(10.0)
    late.join(10.0)
    assert sorted(answers) == [2, 4]
    assert recorder.batches == [("a", [1, 2])]


def test_drain_runs_what_is_queued_at_shutdown() -> None:
    recorder = Recorder()
    batcher: Batcher[str, int, int] = Batcher(recorder, batch_max=2)
    tickets = [batcher.submit("a", item) for item in range(5)]  # nobody collects them
    assert batcher.drain(timeout_s=10.0)
    assert all(ticket.done() for ticket in tickets)
    assert [ticket.result() for ticket in tickets] == [0, 2, 4, 6, 8]
    assert batcher.queued == 0


def test_drain_gives_up_at_its_deadline_while_a_run_is_stuck() -> None:
    recorder = Recorder(hold=True)
    batcher: Batcher[str, int, int] = Batcher(recorder, batch_max=2, max_runs=1)
    first = _occupy(batcher, recorder)
    assert not batcher.drain(timeout_s=0.05)
    recorder.release.set()
    first.join(10.0)
    assert batcher.drain(timeout_s=10.0)


def test_help_runs_queued_frames_without_waiting_for_a_result() -> None:
    recorder = Recorder()
    batcher: Batcher[str, int, int] = Batcher(recorder, batch_max=8)
    tickets = [batcher.submit("a", item) for item in (1, 2, 3)]
    batcher.help()
    assert all(ticket.done() for ticket in tickets)
    assert recorder.batches == [("a", [1, 2, 3])]


@pytest.mark.parametrize(
    "bounds", [{"batch_max": 0}, {"max_runs": 0}, {"batch_wait_ms": -1.0}], ids=str
)
def test_bounds_that_cannot_work_are_refused(bounds: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        Batcher(Recorder(), **bounds)  # type: ignore[arg-type]

"""Background work: a throwaway thread, at a lower priority than the inspections."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from edge.background import BACKGROUND_NICENESS, lower_this_threads_priority, run_in_fresh_thread


def test_returns_the_result_from_another_thread() -> None:
    caller = threading.get_ident()
    assert run_in_fresh_thread(lambda: threading.get_ident() != caller, name="t") is True


def test_raises_the_work_s_error_in_the_caller() -> None:
    def fail() -> None:
        msg = "bad bundle"
        raise ValueError(msg)

    with pytest.raises(ValueError, match="bad bundle"):
        run_in_fresh_thread(fail, name="t")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_lowers_only_the_worker_thread() -> None:
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def work() -> tuple[bool, int]:
        lowered = lower_this_threads_priority()
        return lowered, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    lowered, inside = run_in_fresh_thread(work, name="t")
    assert lowered
    assert inside == min(19, before + BACKGROUND_NICENESS)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before

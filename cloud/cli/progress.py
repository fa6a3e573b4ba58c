"""A staged progress display for long CLI work (rich, which typer already brings)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from cloud.types import StageProgress

__all__ = ["staged_progress"]


@contextmanager
def staged_progress(*, enabled: bool = True) -> Iterator[StageProgress]:
    """Yield ``report(stage, done, total)``; each new stage gets its own bar.

    Long commands (train, evaluate) report several named steps; one bar per
    stage shows which step is slow without the caller managing bars.
    """
    columns = (
        TextColumn("{task.description:<36}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, disable=not enabled, transient=False) as progress:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=max(total, 1))
            progress.update(tasks[stage], completed=done, total=max(total, 1))

        yield report

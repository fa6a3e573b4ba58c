"""Type aliases the cloud's modules share, defined once so their meanings cannot drift."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

__all__ = ["ProgressCallback", "StageProgress"]

ProgressCallback: TypeAlias = Callable[[int, int], None]
"""Told ``(done, total)`` as one piece of long work advances: images, coreset steps."""

StageProgress: TypeAlias = Callable[[str, int, int], None]
"""Told ``(stage, done, total)`` by work with several named steps; each stage is a
``ProgressCallback`` once its name is bound (``functools.partial(report, stage)``)."""

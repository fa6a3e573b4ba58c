"""Follow an alias and roll out each version it moves to, until the caller says stop.

The watcher knows nothing of signals or terminals: the caller passes a
``threading.Event`` (the CLI sets it on SIGINT/SIGTERM, a web app on shutdown)
and hears of each move, rollout and error through callbacks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from cloud.deploy.rollout import RolloutReport
from cloud.deploy.service import VersionDeployer
from cloud.deploy.targets import Target
from cloud.errors import LinewatchError

__all__ = ["ErrorCallback", "MoveCallback", "ReportCallback", "watch_alias"]

logger = logging.getLogger(__name__)

MoveCallback = Callable[[int], None]
ReportCallback = Callable[[RolloutReport], None]
ErrorCallback = Callable[[LinewatchError], None]


def watch_alias(
    deployer: VersionDeployer,
    alias: str,
    targets: Callable[[], list[Target]],
    stop: threading.Event,
    *,
    interval_s: float = 15.0,
    on_move: MoveCallback | None = None,
    on_rollout: ReportCallback | None = None,
    on_error: ErrorCallback | None = None,
) -> None:
    """Roll out whatever ``alias`` names now, then again each time it moves, until ``stop``.

    Each move is tried once: a node that fails keeps its old model and is not
    retried until the alias moves again. A failed rollout or an unreachable
    registry is reported and the watch goes on. ``stop`` is checked between
    checks, and the wait between them ends as soon as it is set; a rollout in
    progress is finished first.

    Args:
        deployer: the registered model and how to roll it out.
        alias: the alias to follow, such as ``production``.
        targets: the nodes, asked again for each move (a line may have grown).
        stop: set it to end the watch.
        interval_s: seconds between alias checks.
        on_move: called with the new version number before its rollout.
        on_rollout: called with each finished rollout's report.
        on_error: called with what kept a move from landing everywhere (the registry,
            the download, failed nodes as a ``DeployError``); logged as a warning when None.
    """
    deployed: int | None = None
    logger.info("watching model=%s alias=%s interval_s=%g", deployer.name, alias, interval_s)
    while not stop.is_set():
        try:
            current = deployer.current_version(alias)
            if current != deployed:
                logger.info(
                    "alias moved model=%s alias=%s version=%d", deployer.name, alias, current
                )
                if on_move is not None:
                    on_move(current)
                deployed = current  # tried once per move: a failed node keeps its model
                report = deployer.deploy(targets(), version=current)
                if on_rollout is not None:
                    on_rollout(report)
                report.raise_for_failures()
        except LinewatchError as exc:  # reported; the next check tries again
            if on_error is None:
                logger.warning(
                    "watch goes on model=%s alias=%s error=%s", deployer.name, alias, exc
                )
            else:
                on_error(exc)
        stop.wait(interval_s)
    logger.info("watch stopped model=%s alias=%s", deployer.name, alias)

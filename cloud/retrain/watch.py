"""Retrain when enough new reviews arrived or a period passed, until told to stop.

The watcher keeps what it must remember (when it last retrained) in a small JSON
file beside the model's lock, so a restart neither retrains at once nor forgets
the reviews that arrived while it was down. Every check logs its decision.
Like ``cloud.deploy.watch``, it knows nothing of signals: the caller sets a
``threading.Event``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from cloud.db.models import Node, ReviewState, Sample
from cloud.db.session import make_engine, make_session_factory
from cloud.errors import ConfigError, LinewatchError
from cloud.registry import RegistrySettings
from cloud.retrain.service import RetrainOutcome, RetrainRequest, run_retrain

__all__ = ["Decision", "count_new_reviews", "parse_duration", "should_retrain", "watch_retrain"]

logger = logging.getLogger(__name__)

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``15m``, ``24h`` or ``7d``.

    Raises:
        ConfigError: anything else.
    """
    found = _DURATION.match(text.strip())
    if not found:
        msg = f"duration {text!r}: write a number and a unit s, m, h or d, e.g. 24h"
        raise ConfigError(msg)
    return float(found.group(1)) * _UNIT_S[found.group(2)]


@dataclass(frozen=True)
class Decision:
    """Whether to retrain now, and why (logged either way)."""

    due: bool
    reason: str


def should_retrain(
    new_reviews: int, since_last_s: float, *, every_s: float | None, min_new: int | None
) -> Decision:
    """Retrain by count (``min_new`` new reviews) or by period (``every_s`` and any review)."""
    if min_new is not None and new_reviews >= min_new:
        return Decision(True, f"{new_reviews} new reviews >= {min_new}")
    if every_s is not None and since_last_s >= every_s:
        if new_reviews:
            return Decision(True, f"{since_last_s:.0f}s since the last retrain >= {every_s:.0f}s")
        return Decision(False, "period passed but no new reviews")
    return Decision(False, f"{new_reviews} new reviews, {since_last_s:.0f}s since the last retrain")


def count_new_reviews(request: RetrainRequest, since: datetime) -> int:
    """Samples of the model (on its lines) reviewed normal or defect after ``since``."""
    engine = make_engine(request.db_url, create_dirs=False)
    try:
        query = (
            select(func.count())
            .select_from(Sample)
            .join(Node, Sample.node_id == Node.id)
            .where(Sample.model_name == request.name)
            .where(Sample.review_state == ReviewState.REVIEWED)
            .where(Sample.label.in_(["normal", "defect"]))
            .where(Sample.reviewed_at > since)
        )
        if request.lines:
            query = query.where(Node.line.in_(list(request.lines)))
        with make_session_factory(engine)() as session:
            return int(session.execute(query).scalar_one())
    finally:
        engine.dispose()


def _state_path(request: RetrainRequest) -> Path:
    return request.state_dir / f"{request.name}.watch.json"


def _last_retrain(request: RetrainRequest, now: datetime) -> datetime:
    path = _state_path(request)
    try:
        return datetime.fromisoformat(json.loads(path.read_text())["last_retrain_at"])
    except (OSError, ValueError, KeyError, TypeError):
        _remember(request, now)  # first start: the period starts now
        return now


def _remember(request: RetrainRequest, at: datetime) -> None:
    request.state_dir.mkdir(parents=True, exist_ok=True)
    path = _state_path(request)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"last_retrain_at": at.isoformat()}) + "\n")
    tmp.replace(path)


def watch_retrain(
    request: RetrainRequest,
    settings: RegistrySettings,
    stop: threading.Event,
    *,
    every_s: float | None,
    min_new: int | None,
    check_interval_s: float = 60.0,
    on_outcome: Callable[[RetrainOutcome], None] | None = None,
    on_error: Callable[[LinewatchError], None] | None = None,
) -> None:
    """Check for new reviews every ``check_interval_s`` and retrain when due, until ``stop``.

    A retrain that fails (nothing new to learn, the registry down, another retrain
    holding the lock) is reported and the watch goes on; the attempt still counts
    as the last retrain, so a failing one is not repeated at every check.
    """
    logger.info("watching reviews model=%s every_s=%s min_new=%s", request.name, every_s, min_new)
    while not stop.is_set():
        now = datetime.now(UTC)
        last = _last_retrain(request, now)
        try:
            decision = should_retrain(
                count_new_reviews(request, last),
                (now - last).total_seconds(),
                every_s=every_s,
                min_new=min_new,
            )
            logger.info(
                "retrain check model=%s due=%s reason=%s",
                request.name,
                decision.due,
                decision.reason,
            )
            if decision.due:
                _remember(request, now)
                outcome = run_retrain(request, settings)
                if on_outcome is not None:
                    on_outcome(outcome)
        except LinewatchError as exc:  # reported; the next check tries again
            if on_error is None:
                logger.warning("retrain watch goes on model=%s error=%s", request.name, exc)
            else:
                on_error(exc)
        stop.wait(check_interval_s)
    logger.info("retrain watch stopped model=%s", request.name)

"""Reads behind the alert pages: a filtered, paged feed, what is new since a cursor, counts.

Filters are bound parameters (text that looks like SQL is just a name that
matches nothing), and pages are bounded so a huge page number is an empty page.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from cloud.db.models import Alert, Node, Review, ReviewState, Sample
from cloud.db.queries import AlertView, SampleView, alert_view, sample_view

__all__ = [
    "MAX_PAGE",
    "AlertFilters",
    "alert_page",
    "alerts_after",
    "alerts_per_hour",
    "reviewed_scores",
    "sample_page",
]

MAX_PAGE = 1_000_000


@dataclass(frozen=True)
class AlertFilters:
    """What the operator narrowed the feed to; None means any."""

    site: str | None = None
    line: str | None = None
    node: str | None = None
    since: datetime | None = None


def _filtered(filters: AlertFilters) -> Select[Alert, Node]:
    query = select(Alert, Node).join(Node, Alert.node_id == Node.id)
    if filters.site:
        query = query.where(Node.site == filters.site)
    if filters.line:
        query = query.where(Node.line == filters.line)
    if filters.node:
        query = query.where(Node.node == filters.node)
    if filters.since is not None:
        query = query.where(Alert.captured_at >= filters.since)
    return query


def alert_page(
    session: Session, filters: AlertFilters, *, page: int = 1, per_page: int = 50
) -> list[AlertView]:
    """Return one page of alerts, newest received first (page 1 is the newest)."""
    page = min(max(page, 1), MAX_PAGE)
    query = (
        _filtered(filters)
        .order_by(Alert.received_at.desc(), Alert.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    return [alert_view(alert, owner) for alert, owner in session.execute(query)]


def alerts_after(
    session: Session, filters: AlertFilters, cursor: tuple[datetime, str], limit: int = 100
) -> list[AlertView]:
    """Return alerts received after ``cursor`` (received_at, id), oldest first: the live feed."""
    at, alert_id = cursor
    query = (
        _filtered(filters)
        .where(or_(Alert.received_at > at, and_(Alert.received_at == at, Alert.id > alert_id)))
        .order_by(Alert.received_at, Alert.id)
        .limit(limit)
    )
    return [alert_view(alert, owner) for alert, owner in session.execute(query)]


def alerts_per_hour(session: Session, now: datetime, hours: int = 24) -> dict[str, list[int]]:
    """Return, per ``site/line``, the alert count of each of the last ``hours`` hours."""
    start = now - timedelta(hours=hours)
    query = (
        select(Node.site, Node.line, Alert.captured_at)
        .join(Node, Alert.node_id == Node.id)
        .where(Alert.captured_at >= start)
    )
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * hours)
    for site, line, captured_at in session.execute(query):
        bucket = min(int((captured_at - start).total_seconds() // 3600), hours - 1)
        counts[f"{site}/{line}"][bucket] += 1
    return dict(sorted(counts.items()))


def reviewed_scores(session: Session, limit: int = 5_000) -> tuple[list[float], list[float], float]:
    """Return the scores of recently reviewed normals and defects (score / threshold).

    Scores are divided by their own threshold so models with different scales
    share one axis; the third value is the threshold on that axis. The newest
    ``limit`` reviews are found through the reviews' primary key (no sort of
    every sample), and each sample counts once, with its current label.
    """
    recent = select(Review.sample_id).order_by(Review.id.desc()).limit(limit).subquery()
    query = select(Sample.label, Sample.image_score / func.nullif(Sample.threshold, 0.0)).where(
        Sample.id.in_(select(recent.c.sample_id))
    )
    normals: list[float] = []
    defects: list[float] = []
    for label, ratio in session.execute(query):
        if ratio is None:
            continue
        (normals if label == "normal" else defects).append(float(ratio))
    return normals, defects, 1.0


def sample_page(
    session: Session,
    *,
    reviewed: bool | None = None,
    verdict: str | None = None,
    node: str | None = None,
    page: int = 1,
    per_page: int = 100,
) -> list[SampleView]:
    """Return one page of samples, newest capture first, by review state, verdict and node."""
    page = min(max(page, 1), MAX_PAGE)
    query = select(Sample, Node).join(Node, Sample.node_id == Node.id)
    if reviewed is True:
        query = query.where(Sample.review_state != ReviewState.PENDING)
    elif reviewed is False:
        query = query.where(Sample.review_state == ReviewState.PENDING)
    if verdict is not None:
        query = query.where(Sample.verdict == verdict)
    if node:
        query = query.where(Node.node == node)
    query = (
        query.order_by(Sample.captured_at.desc(), Sample.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    return [sample_view(sample, owner) for sample, owner in session.execute(query)]

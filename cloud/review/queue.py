"""The review queue: uncertain samples first, then abnormal ones nobody confirmed yet.

Within a verdict the oldest comes first, so nothing waits forever; the order
matches the ``ix_samples_queue`` index. Skipped ids stay out of this person's
queue only (they are the caller's, not stored).
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from cloud.db.models import Node, ReviewState, Sample
from cloud.db.queries import SampleView, sample_view

__all__ = ["queue_page", "queue_size", "sample_view", "sample_views"]

_QUEUE_VERDICTS = ("uncertain", "abnormal")


def sample_views(session: Session, ids: Collection[str]) -> dict[str, SampleView]:
    """Return the views of the samples with these ids (unknown ids are absent)."""
    if not ids:
        return {}
    query = select(Sample, Node).join(Node, Sample.node_id == Node.id)
    rows = session.execute(query.where(Sample.id.in_(list(ids))))
    return {sample.id: sample_view(sample, owner) for sample, owner in rows}


def _pending(skip: Collection[str]) -> Select[Sample, Node]:
    query = (
        select(Sample, Node)
        .join(Node, Sample.node_id == Node.id)
        .where(Sample.review_state == ReviewState.PENDING)
    )
    if skip:
        query = query.where(Sample.id.not_in(list(skip)))
    return query


def queue_page(session: Session, *, skip: Collection[str] = (), limit: int = 1) -> list[SampleView]:
    """Return the next samples to review, uncertain before abnormal, oldest first.

    One query per verdict, each an index range scan of ``ix_samples_queue``; a
    single query ordered by verdict rank would sort every pending sample.
    """
    found: list[SampleView] = []
    for verdict in _QUEUE_VERDICTS:
        if len(found) >= limit:
            break
        query = (
            _pending(skip)
            .where(Sample.verdict == verdict)
            .order_by(Sample.captured_at, Sample.id)
            .limit(limit - len(found))
        )
        found.extend(sample_view(sample, owner) for sample, owner in session.execute(query))
    return found


def queue_size(session: Session) -> int:
    """Return how many samples wait for review."""
    query = (
        select(func.count())
        .select_from(Sample)
        .where(Sample.review_state == ReviewState.PENDING)
        .where(Sample.verdict.in_(_QUEUE_VERDICTS))
    )
    return int(session.execute(query).scalar_one())

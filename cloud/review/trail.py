"""Reviews as data: record a person's label for a sample, read the trail back.

A review is never changed: a correction is a new row, and the sample's
``label``/``review_state`` mirror the newest one so the queue stays a simple
query. The web API and ``linewatch samples review`` both write through here.
The caller owns the transaction.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.db.models import Review, ReviewState, Sample, utc_now
from cloud.errors import LinewatchError

__all__ = [
    "Label",
    "ReviewError",
    "ReviewView",
    "SampleNotFound",
    "defect_types_seen",
    "record_review",
    "review_trail",
    "reviews_since",
]

logger = logging.getLogger(__name__)

_DEFECT_TYPE = re.compile(r"^[a-z0-9][a-z0-9_ -]{0,63}$")
MAX_NOTE_CHARS = 2000


class Label(StrEnum):
    """What a person says a sample shows."""

    NORMAL = "normal"
    DEFECT = "defect"


class ReviewError(LinewatchError):
    """A review that cannot be recorded as asked (bad defect type, note too long)."""


class SampleNotFound(LinewatchError):
    """No sample has this id."""


@dataclass(frozen=True)
class ReviewView:
    """One entry of a sample's review trail."""

    id: int
    sample_id: str
    reviewer: str
    label: str
    defect_type: str | None
    note: str
    created_at: datetime


def _view(review: Review) -> ReviewView:
    return ReviewView(
        review.id,
        review.sample_id,
        review.reviewer,
        review.label,
        review.defect_type,
        review.comment,
        review.created_at,
    )


def _clean_defect_type(label: Label, defect_type: str | None) -> str | None:
    if label is Label.NORMAL:
        if defect_type:
            msg = f"defect type {defect_type!r} given with label normal; drop it or label defect"
            raise ReviewError(msg)
        return None
    if not defect_type:
        return None
    cleaned = defect_type.strip().lower()
    if not _DEFECT_TYPE.match(cleaned):
        msg = (
            f"defect type {defect_type!r}: use up to 64 lower-case letters, digits, "
            "spaces, '_' or '-' (e.g. crack)"
        )
        raise ReviewError(msg)
    return cleaned


def record_review(
    session: Session,
    sample_id: str,
    label: Label,
    reviewer: str,
    *,
    defect_type: str | None = None,
    note: str = "",
    now: datetime | None = None,
) -> ReviewView:
    """Append a review of ``sample_id`` and make it the sample's current label.

    Raises:
        SampleNotFound: no sample has this id.
        ReviewError: a defect type with a normal label, a malformed type, a note too long.
    """
    sample = session.get(Sample, sample_id)
    if sample is None:
        msg = f"sample {sample_id}: no such sample; see `linewatch samples list`"
        raise SampleNotFound(msg)
    cleaned_type = _clean_defect_type(label, defect_type)
    if len(note) > MAX_NOTE_CHARS:
        msg = f"note of {len(note)} characters; keep it under {MAX_NOTE_CHARS}"
        raise ReviewError(msg)
    at = now or utc_now()
    review = Review(
        sample_id=sample_id,
        reviewer=reviewer,
        label=label.value,
        defect_type=cleaned_type,
        comment=note,
        created_at=at,
    )
    session.add(review)
    sample.label = label.value
    sample.review_state = ReviewState.REVIEWED
    sample.reviewed_at = at
    session.flush()
    logger.info(
        "review recorded sample=%s label=%s defect_type=%s reviewer=%s",
        sample_id,
        label.value,
        cleaned_type,
        reviewer,
    )
    return _view(review)


def review_trail(session: Session, sample_id: str) -> list[ReviewView]:
    """Return every review of a sample, oldest first (the last one is current)."""
    query = select(Review).where(Review.sample_id == sample_id).order_by(Review.id)
    return [_view(review) for review in session.scalars(query)]


def defect_types_seen(session: Session) -> list[str]:
    """Return the defect types reviewers have used so far, by name."""
    query = (
        select(Review.defect_type)
        .where(Review.defect_type.is_not(None))
        .distinct()
        .order_by(Review.defect_type)
    )
    return [name for name in session.scalars(query) if name]


def reviews_since(session: Session, since: datetime) -> int:
    """Return how many reviews were recorded at or after ``since`` (throughput)."""
    query = select(func.count()).select_from(Review).where(Review.created_at >= since)
    return int(session.execute(query).scalar_one())

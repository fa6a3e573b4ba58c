"""The demo's simulated reviewer: labels collected samples from the synthetic line's truth.

A person would look at each flagged frame; the demo knows the answer instead,
because every node plays a synthetic line video whose sidecar JSON says which
frames show a defective part. A node names a camera frame
``<captured_at_ms>-<index>``, the index counting frames since the video was
opened, so ``index % n_frames`` is the frame of the video (the demo plays it
with ``--loop``). Reviews go through ``record_review``, the function the web
app and ``linewatch samples review`` use.

A looped video shows the same frame again on every pass, byte for byte, which
no real camera does; the reviewer labels each distinct image (by sha256) once
and leaves its repeats in the queue, so the retrain's regression set is not
the same few dozen images many times over.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.db.models import Node, ReviewState, Sample
from cloud.review import Label, record_review
from cloud.synth import LinePart, LineVideoLabels

__all__ = [
    "REVIEWER",
    "ReviewTally",
    "part_at",
    "part_of_frame",
    "review_collected",
    "video_frame",
]

logger = logging.getLogger(__name__)

REVIEWER = "demo:simulated-reviewer"


@dataclass(frozen=True)
class ReviewTally:
    """What the simulated reviewer did."""

    normals: int
    defects: int
    repeats: int  # samples whose image it had already labelled, left pending
    skipped: int  # frames it could not place (another node, an unexpected frame id)


def video_frame(labels: LineVideoLabels, frame_id: str) -> int | None:
    """The frame of the looped video a camera frame id names; None unless ``<ms>-<index>``."""
    _, _, index_text = frame_id.rpartition("-")
    if not index_text.isdigit() or labels.n_frames < 1:
        return None
    return int(index_text) % labels.n_frames


def part_at(labels: LineVideoLabels, frame: int) -> LinePart | None:
    """The part video frame ``frame`` shows, or None between parts."""
    for part in labels.parts:
        if part.first_frame <= frame <= part.last_frame:
            return part
    return None


def part_of_frame(labels: LineVideoLabels, frame_id: str) -> LinePart | None:
    """The part a camera frame id shows, or None when the id is not ``<ms>-<index>``."""
    frame = video_frame(labels, frame_id)
    return None if frame is None else part_at(labels, frame)


def review_collected(
    sessions: sessionmaker[Session],
    videos: Mapping[str, LineVideoLabels],
    *,
    reviewer: str = REVIEWER,
) -> ReviewTally:
    """Review every pending sample of the nodes in ``videos`` from their video's labels.

    Args:
        sessions: the demo database.
        videos: each node's name and the labels of the video it plays.
        reviewer: the name recorded with each review.

    Returns:
        How many samples were labelled normal and defect, and how many were left pending.
    """
    normals = defects = repeats = skipped = 0
    seen: set[str] = set()
    with sessions.begin() as session:
        pending = session.execute(
            select(Sample.id, Sample.frame_id, Sample.image_sha256, Node.node)
            .join(Node, Sample.node_id == Node.id)
            .where(Sample.review_state == ReviewState.PENDING)
            .order_by(Sample.captured_at, Sample.id)
        ).all()
        for sample_id, frame_id, image_sha256, node in pending:
            if image_sha256 in seen:
                repeats += 1
                continue
            labels = videos.get(node)
            part = None if labels is None else part_of_frame(labels, frame_id)
            if part is None:
                skipped += 1
                logger.warning("sample not reviewed sample=%s frame_id=%s", sample_id, frame_id)
                continue
            seen.add(image_sha256)
            if part.defect_type is None:
                record_review(session, sample_id, Label.NORMAL, reviewer, note="synthetic truth")
                normals += 1
            else:
                record_review(
                    session,
                    sample_id,
                    Label.DEFECT,
                    reviewer,
                    defect_type=part.defect_type,
                    note="synthetic truth",
                )
                defects += 1
    return ReviewTally(normals=normals, defects=defects, repeats=repeats, skipped=skipped)

"""Similar past cases: the nearest stored descriptors of the same line, by cosine.

The index keeps one float32 matrix per (site, line) in memory and catches up
with the append-only ``sample_embeddings`` table by reading ids above the last
it saw, so a search is one matrix-vector product (about a millisecond at
100,000 samples) plus one query for the labels of the few it returns.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.db.models import Node, SampleEmbedding
from cloud.db.queries import SampleView
from cloud.review.embedding import EMBEDDING_DIM, decode_vector
from cloud.review.queue import sample_views

__all__ = ["SimilarCase", "SimilarIndex"]

logger = logging.getLogger(__name__)

_LineKey = tuple[str, str]
_REFRESH_BATCH = 20_000
_RESCAN_IDS = 512  # ids read again on each refresh: commits that came out of order


@dataclass(frozen=True)
class SimilarCase:
    """One other sample of the same line and how alike it is (cosine, -1..1)."""

    similarity: float
    sample: SampleView


@dataclass
class _LineVectors:
    ids: list[str] = field(default_factory=list)
    chunks: list[npt.NDArray[np.float32]] = field(default_factory=list)
    matrix: npt.NDArray[np.float32] = field(
        default_factory=lambda: np.zeros((0, EMBEDDING_DIM), np.float32)
    )

    def consolidate(self) -> None:
        if self.chunks:
            self.matrix = np.concatenate([self.matrix, *self.chunks])
            self.chunks = []


class SimilarIndex:
    """An in-memory, incrementally refreshed cosine index over every line's samples."""

    def __init__(self) -> None:
        """Start empty; the first ``refresh`` reads everything stored so far."""
        self._lines: dict[_LineKey, _LineVectors] = {}
        self._position: dict[str, tuple[_LineKey, int]] = {}
        self._last_id = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many samples the index holds."""
        return len(self._position)

    def refresh(self, session: Session) -> int:
        """Read descriptors stored since the last refresh; returns how many were added.

        Ids are handed out at insert, not at commit: on PostgreSQL a pass that inserted
        id 5 may commit after the one that inserted id 6 was read. So each refresh reads
        again the last ``_RESCAN_IDS`` ids and skips the samples it already holds.
        """
        added = 0
        with self._lock:
            cursor = max(0, self._last_id - _RESCAN_IDS)
            while True:
                query = (
                    select(
                        SampleEmbedding.id,
                        SampleEmbedding.sample_id,
                        SampleEmbedding.vector,
                        Node.site,
                        Node.line,
                    )
                    .join(Node, SampleEmbedding.node_id == Node.id)
                    .where(SampleEmbedding.id > cursor)
                    .order_by(SampleEmbedding.id)
                    .limit(_REFRESH_BATCH)
                )
                rows = session.execute(query).all()
                for row_id, sample_id, vector, site, line in rows:
                    cursor = row_id
                    if sample_id in self._position:
                        continue
                    self._append((site, line), sample_id, decode_vector(vector))
                    added += 1
                self._last_id = max(self._last_id, cursor)
                if len(rows) < _REFRESH_BATCH:
                    break
            for vectors in self._lines.values():
                vectors.consolidate()
        if added:
            logger.debug("similar index refreshed added=%d total=%d", added, len(self))
        return added

    def _append(self, key: _LineKey, sample_id: str, vector: npt.NDArray[np.float32]) -> None:
        vectors = self._lines.setdefault(key, _LineVectors())
        position = len(vectors.ids)
        vectors.ids.append(sample_id)
        vectors.chunks.append(vector.reshape(1, -1))
        self._position[sample_id] = (key, position)

    def nearest(self, sample_id: str, k: int = 6) -> list[tuple[str, float]]:
        """Return up to ``k`` (id, similarity) of other samples of the same line, best first.

        Every stored sample is a past case to the reviewer, whatever its capture
        time: the queue shows uncertain samples first, so a sample reviewed a
        moment ago may have been captured after the one on screen. A sample the
        index has not read yet has no neighbours (refresh first).
        """
        with self._lock:
            found = self._position.get(sample_id)
            if found is None or k < 1:
                return []
            key, position = found
            vectors = self._lines[key]
            matrix = vectors.matrix
        query = matrix[position]
        if not np.any(query):
            return []
        scores = matrix @ query
        scores[position] = -np.inf  # not itself
        count = min(k, int(np.isfinite(scores).sum()))
        if count == 0:
            return []
        best = np.argpartition(-scores, count - 1)[:count]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(vectors.ids[i], float(scores[i])) for i in best]

    def similar_cases(self, session: Session, sample_id: str, k: int = 6) -> list[SimilarCase]:
        """Return the ``k`` most similar other samples with their current review labels."""
        neighbours = self.nearest(sample_id, k)
        views = sample_views(session, [found for found, _ in neighbours])
        return [
            SimilarCase(similarity, views[found])
            for found, similarity in neighbours
            if found in views
        ]

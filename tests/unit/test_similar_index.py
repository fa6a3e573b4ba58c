"""The similar-cases index reads descriptors that commit out of id order (PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cloud.db.models import Sample, SampleEmbedding, utc_now
from cloud.review import SimilarIndex
from cloud.review.embedding import EMBEDDING_DIM, encode_vector
from tests.web_data import WebData, pattern_png


def _store_descriptor(data: WebData, sample_id: str, row_id: int, seed: int) -> None:
    vector = np.random.default_rng(seed).random(EMBEDDING_DIM, dtype=np.float32)
    with data.sessions.begin() as session:
        sample = session.get(Sample, sample_id)
        assert sample is not None
        session.add(
            SampleEmbedding(
                id=row_id,
                sample_id=sample_id,
                node_id=sample.node_id,
                vector=encode_vector(vector / np.linalg.norm(vector)),
                created_at=utc_now(),
            )
        )


def test_a_descriptor_committed_after_a_later_id_is_still_indexed(tmp_path: Path) -> None:
    data = WebData.create(tmp_path)
    try:
        first, late, latest = (data.add_sample(image_png=pattern_png(seed=s)) for s in (1, 2, 3))
        _store_descriptor(data, first, row_id=10, seed=1)
        _store_descriptor(data, latest, row_id=30, seed=3)
        index = SimilarIndex()
        with data.sessions() as session:
            assert index.refresh(session) == 2
        # Id 20 was handed out before 30 but its transaction committed after the read.
        _store_descriptor(data, late, row_id=20, seed=2)
        with data.sessions() as session:
            assert index.refresh(session) == 1
            assert index.refresh(session) == 0  # read again, not added twice
        assert len(index) == 3
        assert {found for found, _ in index.nearest(first, k=5)} == {late, latest}
    finally:
        data.close()

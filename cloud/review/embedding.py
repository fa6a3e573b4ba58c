"""A compact image descriptor for similar-case search: 64 numbers per sample.

The frame is turned grey, shrunk to 8x8 by area averaging, centred and scaled
to unit length, so a dot product is a cosine similarity that ignores overall
brightness. It is cheap (no model, a few microseconds), computed from the
stored PNG the first time a sample is needed, and kept as float16 (128 bytes).
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.db.models import Sample, SampleEmbedding, utc_now

__all__ = [
    "EMBEDDING_DIM",
    "decode_vector",
    "embed_missing",
    "embed_sample",
    "encode_vector",
    "image_embedding",
]

logger = logging.getLogger(__name__)

_SIDE = 8
EMBEDDING_DIM = _SIDE * _SIDE
_STORED_DTYPE = np.float16


def image_embedding(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Return the unit-length 64-d descriptor of a grey or BGR image (zeros if flat)."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    small = cv2.resize(grey, (_SIDE, _SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)
    centred = small.reshape(-1) - float(small.mean())
    norm = float(np.linalg.norm(centred))
    unit: npt.NDArray[np.float32] = (centred / norm) if norm > 1e-6 else np.zeros_like(centred)
    return unit


def encode_vector(vector: npt.NDArray[np.float32]) -> bytes:
    """Pack a descriptor for the database."""
    return vector.astype(_STORED_DTYPE).tobytes()


def decode_vector(data: bytes) -> npt.NDArray[np.float32]:
    """Unpack a stored descriptor."""
    return np.frombuffer(data, dtype=_STORED_DTYPE).astype(np.float32)


def _read_image(path: Path) -> npt.NDArray[np.uint8] | None:
    if not path.is_file():
        return None
    data = np.fromfile(path, dtype=np.uint8)
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if decoded is None:
        return None
    if decoded.dtype != np.uint8:  # 16-bit frames: keep the grey levels' shape
        decoded = cv2.convertScaleAbs(decoded, alpha=255.0 / max(float(decoded.max()), 1.0))
    if decoded.ndim == 3 and decoded.shape[2] == 4:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGRA2BGR)
    return np.asarray(decoded, dtype=np.uint8)


def embed_sample(session: Session, store_root: Path, sample: Sample) -> bool:
    """Store the descriptor of one sample unless it has one; False if its image is unreadable.

    An unreadable image gets the zero vector (similar to nothing), so it is not
    retried on every pass.
    """
    existing = session.scalars(
        select(SampleEmbedding.id).where(SampleEmbedding.sample_id == sample.id)
    ).first()
    if existing is not None:
        return True
    image = _read_image(store_root / sample.image_path)
    if image is None:
        logger.warning("image unreadable sample=%s path=%s", sample.id, sample.image_path)
    vector = np.zeros(EMBEDDING_DIM, np.float32) if image is None else image_embedding(image)
    session.add(
        SampleEmbedding(
            sample_id=sample.id,
            node_id=sample.node_id,
            vector=encode_vector(vector),
            created_at=utc_now(),
        )
    )
    session.flush()
    return image is not None


def embed_missing(session: Session, store_root: Path, *, limit: int = 200) -> int:
    """Store descriptors for up to ``limit`` samples that have none; returns how many tried."""
    query = (
        select(Sample)
        .outerjoin(SampleEmbedding, SampleEmbedding.sample_id == Sample.id)
        .where(SampleEmbedding.id.is_(None))
        .order_by(Sample.received_at)
        .limit(limit)
    )
    samples = list(session.scalars(query))
    for sample in samples:
        embed_sample(session, store_root, sample)
    return len(samples)

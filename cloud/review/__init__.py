"""Reviews of samples: the queue, the append-only trail, and similar past cases."""

from cloud.review.embedding import embed_missing, embed_sample, image_embedding
from cloud.review.queue import queue_page, queue_size, sample_view, sample_views
from cloud.review.similar import SimilarCase, SimilarIndex
from cloud.review.trail import (
    Label,
    ReviewError,
    ReviewView,
    SampleNotFound,
    defect_types_seen,
    record_review,
    review_trail,
    reviews_since,
)

__all__ = [
    "Label",
    "ReviewError",
    "ReviewView",
    "SampleNotFound",
    "SimilarCase",
    "SimilarIndex",
    "defect_types_seen",
    "embed_missing",
    "embed_sample",
    "image_embedding",
    "queue_page",
    "queue_size",
    "record_review",
    "review_trail",
    "reviews_since",
    "sample_view",
    "sample_views",
]

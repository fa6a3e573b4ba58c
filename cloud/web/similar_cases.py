"""Similar past cases for one sample, embedding it first if the background pass has not."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cloud.db.models import Sample
from cloud.review import SampleNotFound, SimilarCase, embed_sample
from cloud.web.deps import Services

__all__ = ["similar_cases_of"]


def similar_cases_of(app: Services, session: Session, sample_id: str, k: int) -> list[SimilarCase]:
    """Return the ``k`` most similar other samples of the sample's line.

    Raises:
        SampleNotFound: no sample has this id.
    """
    sample = session.get(Sample, sample_id)
    if sample is None:
        msg = f"sample {sample_id}: no such sample"
        raise SampleNotFound(msg)
    embed_sample(session, app.store_root, sample)
    app.similar.refresh(session)
    return app.similar.similar_cases(session, sample_id, k)

"""The next training set: what production learnt from, plus every sample reviewed normal.

Keeping every previous good image is what stops the new version forgetting;
adding the reviewed normals (false alarms and uncertain frames a person said
were fine) is what it learns. Reviewed samples come from the database and their
images from the content-addressed store; an image that is gone or whose bytes
no longer match its sha256 is named and skipped, never silently used.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.collector.store import BlobStore
from cloud.dataset import load_layout
from cloud.db.models import Node, ReviewState, Sample
from cloud.errors import RetrainError
from cloud.train_settings import TrainSettings
from edge.runtime.bundle import Manifest, TrainingImage, file_sha256

__all__ = [
    "NextTrainingSet",
    "ReviewedSample",
    "ReviewedSamples",
    "SetImage",
    "next_training_set",
    "previous_training_set",
    "reviewed_samples",
]

logger = logging.getLogger(__name__)

NORMAL = "normal"
DEFECT = "defect"


@dataclass(frozen=True)
class SetImage:
    """One image of a training set and the role the trainer gives it."""

    path: Path
    sha256: str
    role: str  # "fit" (memory bank) or "calibration" (held out)
    sample_id: str | None = None


@dataclass(frozen=True)
class ReviewedSample:
    """A sample whose newest review says normal or defect, with its image in the store."""

    sample_id: str
    label: str
    line: str
    image: Path
    image_sha256: str
    defect_type: str | None = None


@dataclass(frozen=True)
class ReviewedSamples:
    """The usable reviewed samples of one model, and the ones skipped (with why)."""

    normals: tuple[ReviewedSample, ...]
    defects: tuple[ReviewedSample, ...]
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class NextTrainingSet:
    """The previous images, the reviewed normals added to them, and where the dataset is."""

    previous: tuple[SetImage, ...]
    added: tuple[SetImage, ...]
    data_root: Path | None
    skipped: tuple[str, ...] = field(default=())

    @property
    def images(self) -> tuple[SetImage, ...]:
        """Every image of the new set."""
        return self.previous + self.added

    @property
    def reviewed_normals_used(self) -> int:
        """How many images of the new set are samples people reviewed as normal."""
        return sum(image.sample_id is not None for image in self.images)


def reviewed_samples(
    session: Session, name: str, store: BlobStore, *, lines: Sequence[str] = ()
) -> ReviewedSamples:
    """Every sample of model ``name`` (on ``lines``, if given) whose label is normal or defect.

    A sample counts for the model that flagged it (its ``model_name``); one from
    another model or another line is not used. The label is the newest review's.
    """
    query = (
        select(Sample, Node.line)
        .join(Node, Sample.node_id == Node.id)
        .where(Sample.model_name == name)
        .where(Sample.review_state == ReviewState.REVIEWED)
        .where(Sample.label.in_([NORMAL, DEFECT]))
        .order_by(Sample.reviewed_at, Sample.id)
    )
    if lines:
        query = query.where(Node.line.in_(list(lines)))
    normals: list[ReviewedSample] = []
    defects: list[ReviewedSample] = []
    skipped: list[str] = []
    for sample, line in session.execute(query):
        path = store.path_of(sample.image_path)
        problem = _image_problem(path, sample.image_sha256)
        if problem:
            skipped.append(f"sample {sample.id} ({sample.label}): {problem}")
            logger.warning("reviewed sample skipped sample=%s reason=%s", sample.id, problem)
            continue
        found = ReviewedSample(sample.id, str(sample.label), line, path, sample.image_sha256)
        (normals if sample.label == NORMAL else defects).append(found)
    return ReviewedSamples(tuple(normals), tuple(defects), tuple(skipped))


def _image_problem(path: Path, sha256: str) -> str:
    if not path.is_file():
        return f"image {path} is missing from the store"
    if file_sha256(path) != sha256:
        return f"image {path} does not match its sha256 {sha256[:12]}…"
    return ""


def _recorded(manifest: Manifest) -> tuple[tuple[SetImage, ...], tuple[str, ...]]:
    images = manifest.training_data.images
    label = f"{manifest.name} version {manifest.version}"
    if not images:
        msg = (
            f"model {label} has no recorded training set (trained before versions recorded "
            "one); pass --data DATA with the dataset it was trained on"
        )
        raise RetrainError(msg)
    kept: list[SetImage] = []
    skipped: list[str] = []
    for entry in images:
        kept_image = _recorded_image(entry)
        if isinstance(kept_image, str):
            skipped.append(kept_image)
            logger.warning("training image skipped model=%s reason=%s", label, kept_image)
        else:
            kept.append(kept_image)
    if not any(image.role == "fit" for image in kept):
        msg = (
            f"model {label}: none of its {len(images)} recorded training images is still "
            "readable; pass --data DATA"
        )
        raise RetrainError(msg)
    return tuple(kept), tuple(skipped)


def _recorded_image(entry: TrainingImage) -> SetImage | str:
    if not entry.path or not entry.sha256:
        return f"recorded image {entry.path!r} lacks a path or sha256"
    path = Path(entry.path)
    problem = _image_problem(path, entry.sha256)
    if problem:
        return problem
    return SetImage(path, entry.sha256, entry.role or "fit", entry.sample_id)


def _from_dataset(data: Path, settings: TrainSettings) -> tuple[SetImage, ...]:
    from cloud.train import split_indices  # torch: only when a dataset is split

    layout = load_layout(data)
    fit_index, _ = split_indices(len(layout.train_good), settings)
    fit = set(fit_index)
    return tuple(
        SetImage(path.resolve(), file_sha256(path), "fit" if index in fit else "calibration")
        for index, path in enumerate(layout.train_good)
    )


def previous_training_set(
    manifest: Manifest, settings: TrainSettings, *, data: Path | None = None
) -> tuple[tuple[SetImage, ...], Path | None, tuple[str, ...]]:
    """What the version learnt from: ``data``'s train/good if given, else its recorded set.

    Returns:
        The images, the dataset folder (whose ``test/`` is the regression set, if
        known) and what was skipped, each named.

    Raises:
        RetrainError: no recorded set and no ``data``, or none of it readable.
        DatasetError: ``data`` not in the MVTec AD layout.
    """
    if data is not None:
        return _from_dataset(data, settings), data.resolve(), ()
    images, skipped = _recorded(manifest)
    root = manifest.training_data.data_root
    return images, Path(root) if root else None, skipped


def next_training_set(
    previous: Sequence[SetImage],
    reviewed: ReviewedSamples,
    *,
    data_root: Path | None,
    skipped: Sequence[str] = (),
) -> NextTrainingSet:
    """The previous images plus every reviewed normal not among them (by sha256).

    A reviewed normal goes to the memory bank (role ``fit``): that is what makes
    the next version stop flagging it. Calibration stays on the held-out dataset
    images, so the threshold keeps meaning what it meant. A sample an earlier
    version learnt as normal whose review was since corrected to defect is dropped.
    """
    corrected = {sample.sample_id for sample in reviewed.defects}
    previous = [image for image in previous if image.sample_id not in corrected]
    known = {image.sha256 for image in previous}
    added: list[SetImage] = []
    for sample in reviewed.normals:
        if sample.image_sha256 in known:
            continue
        known.add(sample.image_sha256)
        added.append(SetImage(sample.image, sample.image_sha256, "fit", sample.sample_id))
    return NextTrainingSet(
        previous=tuple(previous),
        added=tuple(added),
        data_root=data_root,
        skipped=tuple(skipped) + reviewed.skipped,
    )

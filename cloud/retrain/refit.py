"""Fit the candidate from the next training set, calibrate it, and write its bundle.

Two ways, measured in ``bench/retrain.py``: ``full`` (the default) fits every
image again, exactly as ``linewatch train`` does; ``incremental`` keeps
production's memory banks, adds the new normals' patches and recalibrates.
Both keep the input shape and settings production was trained with, so scores
stay comparable, and both calibrate on the same held-out dataset images.

Why full is the default: the incremental fit cannot score production's own bank
images leave-one-out (their embeddings are not kept), so it calibrates on the
held-out images and the new normals only; with few new normals that pool is
small and the threshold and per-location baseline come out worse (on a
synthetic line, 10 reviewed normals: 5 false alarms on test/good against 1 for
the full fit). Its bank also grows past ``bank_sizes`` (200 normals: 7x the
entries, slower to search and to fit). At these sizes the full fit costs 1-3x
the incremental one, a price worth a calibration as good as ``train``'s.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import torch

from cloud.bundle_writer import BundleSections, write_bundle
from cloud.calibration import RecallCalibration, lowered_policy, recall_threshold
from cloud.detector import EfficientNetLiteFeatures, PatchCoreModel, export_onnx
from cloud.detector.fitting import (
    CalibrationStats,
    collect_embeddings,
    distance_maps,
    leave_one_out_maps,
)
from cloud.errors import RetrainError
from cloud.retrain.incremental import extend_coreset, prior_banks
from cloud.retrain.training_set import NextTrainingSet, SetImage
from cloud.train import (
    calibrate_model,
    decision_policy,
    detector_info,
    fit_model,
    read_resized,
    score_calibration,
)
from cloud.train_settings import TrainSettings
from cloud.types import StageProgress
from edge.runtime.bundle import ModelBundle, TrainingData, TrainingImage
from edge.runtime.imaging import ImageArray
from edge.runtime.policy import DecisionPolicy

__all__ = [
    "FitMethod",
    "FittedCandidate",
    "fit_candidate",
    "recalibrated_decision",
    "score_images",
    "write_candidate",
]

logger = logging.getLogger(__name__)


class FitMethod(StrEnum):
    """How the candidate is fitted."""

    INCREMENTAL = "incremental"
    FULL = "full"


@dataclass(frozen=True)
class FittedCandidate:
    """The fitted model, its calibration and what fitting cost."""

    model: PatchCoreModel
    stats: CalibrationStats
    method: FitMethod
    fit_s: float
    calibration_images: tuple[ImageArray, ...]


def _read(images: Sequence[SetImage], shape: tuple[int, int]) -> list[ImageArray]:
    return read_resized(tuple(image.path for image in images), shape, skip_unreadable=False)[0]


def _new_model(settings: TrainSettings, shape: tuple[int, int]) -> PatchCoreModel:
    return PatchCoreModel(
        EfficientNetLiteFeatures(settings.feature_blocks),
        input_size=shape,
        smoothing_sigma_patches=settings.smoothing_sigma_patches,
        colour_contrast_weight=settings.colour_contrast_weight,
    )


def _fit_incremental(
    prior: ModelBundle,
    training_set: NextTrainingSet,
    settings: TrainSettings,
    calibration: list[ImageArray],
    report: StageProgress,
) -> tuple[PatchCoreModel, CalibrationStats]:
    shape = (prior.manifest.input.height, prior.manifest.input.width)
    model = _new_model(settings, shape)
    banks = prior_banks(prior, model.level_dims)
    added = _read(training_set.added, shape)
    embeddings = collect_embeddings(
        model,
        added,
        batch_size=settings.batch_size,
        progress=lambda done, total: report("embedding new normals", done, total),
    )
    n_prior_fit = max(1, sum(image.role == "fit" for image in training_set.previous))
    chosen = []
    for index, (bank, old, new) in enumerate(zip(model.banks, banks, embeddings, strict=True)):
        per_image = len(new) // len(added)
        # The share of patches production kept, so new normals are covered as densely.
        ratio = len(old) / (n_prior_fit * per_image)
        size = max(1, round(min(1.0, ratio) * len(new)))
        report(f"growing memory bank {index + 1} of {len(banks)}", 0, 1)
        picks = extend_coreset(old, new, size, seed=settings.seed)
        bank.set_memory_bank(torch.cat([old, new[picks]]))
        # Entries from production belong to no new image: -1 // per_image is -1.
        chosen.append(torch.cat([torch.full((len(old),), -1, dtype=torch.long), picks]))
        report(f"growing memory bank {index + 1} of {len(banks)}", 1, 1)
    report("calibrating", 0, 1)
    maps = distance_maps(model, calibration, batch_size=settings.batch_size)
    if settings.leave_one_out_calibration:
        for index, (bank, new) in enumerate(zip(model.banks, embeddings, strict=True)):
            grid = (int(maps[index].shape[1]), int(maps[index].shape[2]))
            loo = leave_one_out_maps(bank, new, chosen[index], len(new) // len(added), grid)
            maps[index] = torch.cat([maps[index], loo])
    stats = calibrate_model(model, maps, settings)
    report("calibrating", 1, 1)
    return model, stats


def fit_candidate(
    prior: ModelBundle,
    training_set: NextTrainingSet,
    settings: TrainSettings,
    *,
    method: FitMethod = FitMethod.FULL,
    progress: StageProgress | None = None,
) -> FittedCandidate:
    """Fit the next version on ``training_set``, starting from ``prior`` when incremental.

    Raises:
        RetrainError: no new normals to learn (incremental) or no held-out images.
        ImageDecodeError: an image of the set that does not decode.
    """
    report = progress or (lambda stage, done, total: None)
    torch.manual_seed(settings.seed)
    shape = (prior.manifest.input.height, prior.manifest.input.width)
    held_out = [image for image in training_set.images if image.role == "calibration"]
    if not held_out:
        msg = f"model {prior.label}: no held-out calibration images left; pass --data DATA"
        raise RetrainError(msg)
    calibration = _read(held_out, shape)
    started = time.perf_counter()
    if method is FitMethod.INCREMENTAL:
        if not training_set.added:
            msg = f"model {prior.label}: no new reviewed normals to add; nothing to learn"
            raise RetrainError(msg)
        if settings.density_head != "off":
            msg = (
                f"model {prior.label}: its density head needs every good image's patches, "
                "which the bundle does not keep; retrain with the full fit"
            )
            raise RetrainError(msg)
        model, stats = _fit_incremental(prior, training_set, settings, calibration, report)
    else:
        fit = _read([image for image in training_set.images if image.role == "fit"], shape)
        model, stats = fit_model(fit, calibration, settings, report)
    fit_s = time.perf_counter() - started
    logger.info("candidate fitted model=%s method=%s fit_s=%.2f", prior.label, method, fit_s)
    return FittedCandidate(model, stats, method, fit_s, tuple(calibration))


@torch.no_grad()
def score_images(model: PatchCoreModel, paths: Sequence[Path], batch_size: int) -> list[float]:
    """Calibrated image scores of the torch model (the graph computes the same)."""
    shape = model.input_size
    images = read_resized(tuple(paths), shape, skip_unreadable=False)[0]
    scores: list[float] = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.stack(images[start : start + batch_size]))
        scores.extend(float(value) for value in model(batch)[0])
    return scores


def recalibrated_decision(
    candidate: FittedCandidate,
    settings: TrainSettings,
    defect_paths: Sequence[Path],
    recall: float,
) -> tuple[DecisionPolicy, RecallCalibration | None]:
    """The good-quantile policy, lowered to catch ``recall`` of the reviewed defects."""
    policy = decision_policy(candidate.stats, settings)
    if not defect_paths:
        return policy, None
    scores = score_images(candidate.model, defect_paths, settings.batch_size)
    found = recall_threshold(scores, recall=recall, ceiling=policy.threshold)
    lowered = lowered_policy(
        policy, found, band_margin=settings.band_margin, defects="reviewed defects"
    )
    return lowered, found


def _set_digest(images: Sequence[SetImage]) -> str:
    """sha256 over the sorted sha256 of every image: names the set wherever the files live."""
    digest = hashlib.sha256()
    for sha in sorted(image.sha256 for image in images):
        digest.update(bytes.fromhex(sha))
    return digest.hexdigest()


def write_candidate(
    out: Path,
    prior: ModelBundle,
    candidate: FittedCandidate,
    training_set: NextTrainingSet,
    settings: TrainSettings,
    decision: DecisionPolicy,
) -> ModelBundle:
    """Write the candidate's bundle, its manifest naming every image it learnt from."""
    images = training_set.images
    sections = BundleSections(
        name=prior.manifest.name,
        input=prior.manifest.input,
        calibration=score_calibration(candidate.stats, settings),
        decision=decision,
        detector=detector_info(candidate.model, settings),
        training_data=TrainingData(
            digest=_set_digest(images),
            n_train_good=len(images),
            n_memory_bank_images=sum(image.role == "fit" for image in images),
            n_calibration_images=sum(image.role == "calibration" for image in images),
            settings=settings.model_dump(mode="json"),
            data_root=str(training_set.data_root) if training_set.data_root else None,
            images=tuple(
                TrainingImage(
                    path=str(image.path),
                    sha256=image.sha256,
                    role=image.role,
                    sample_id=image.sample_id,
                )
                for image in images
            ),
            base_version=prior.manifest.version,
            fit_method=candidate.method.value,
        ),
    )
    return write_bundle(
        out,
        sections,
        write_model=functools.partial(export_onnx, candidate.model),
        golden_images=candidate.calibration_images[:2],
        golden_seed=settings.seed,
    )

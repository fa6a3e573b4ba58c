"""Fitting the detector: patch embeddings of good images, a coreset memory bank, calibration.

Nothing here runs at the edge. The memory bank is chosen by greedy k-center
coreset selection (PatchCore), which keeps rare-but-normal patches that random
sampling would drop, so unusual good parts do not become false alarms.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from cloud.detector.model import GaussianHead, LevelBank, PatchCoreModel
from cloud.types import ProgressCallback
from edge.runtime.imaging import ImageArray

__all__ = [
    "BORDER_RINGS",
    "CALIBRATION_FOLDS",
    "TAIL_QUANTILE",
    "CalibrationStats",
    "border_tail_factors",
    "calibration_stats",
    "collect_embeddings",
    "distance_maps",
    "fit_gaussian_head",
    "greedy_coreset",
    "leave_one_out_maps",
    "out_of_fold_normalised",
    "patch_normalisation",
]

logger = logging.getLogger(__name__)

CALIBRATION_FOLDS = 5  # cross-fitting of the per-location baseline for calibration scores
BORDER_RINGS = 2  # outer rings of patches whose normal tail is matched to the interior's
TAIL_QUANTILE = 0.99
MAX_BORDER_FACTOR = 2.0


def _batches(images: Sequence[ImageArray], batch_size: int) -> list[torch.Tensor]:
    return [
        torch.from_numpy(np.stack(images[start : start + batch_size]))
        for start in range(0, len(images), batch_size)
    ]


@torch.no_grad()
def collect_embeddings(
    model: PatchCoreModel,
    images: Sequence[ImageArray],
    *,
    batch_size: int = 8,
    progress: ProgressCallback | None = None,
) -> list[torch.Tensor]:
    """Patch embeddings of resized images, one (num_patches, D_l) tensor per level.

    Patches are in image order: image ``i`` owns rows ``i * h_l * w_l`` onwards.
    """
    chunks: list[list[torch.Tensor]] = []
    done = 0
    for batch in _batches(images, batch_size):
        chunks.append([level.reshape(-1, level.shape[-1]) for level in model.embed(batch)])
        done += batch.shape[0]
        if progress:
            progress(done, len(images))
    return [torch.cat(level) for level in zip(*chunks, strict=True)]


@torch.no_grad()
def greedy_coreset(
    embeddings: torch.Tensor,
    size: int,
    *,
    seed: int = 0,
    projection_dim: int = 64,
    progress: ProgressCallback | None = None,
) -> torch.Tensor:
    """Indices of ``size`` embeddings chosen by greedy k-center selection.

    Distances are computed in a random projection (Johnson-Lindenstrauss), as
    PatchCore does, which keeps selection fast without changing its outcome much.
    """
    count, dim = embeddings.shape
    if size >= count:
        return torch.arange(count)
    generator = torch.Generator().manual_seed(seed)
    if dim > projection_dim:
        projection = torch.randn(dim, projection_dim, generator=generator) / projection_dim**0.5
        points = embeddings @ projection
    else:
        points = embeddings
    points = points.contiguous()
    sq_norms = (points**2).sum(dim=1)
    selected = torch.empty(size, dtype=torch.long)
    selected[0] = int(torch.randint(count, (1,), generator=generator))
    nearest = torch.full((count,), torch.inf)
    squared = torch.empty(count)
    report_every = max(1, size // 20)
    for step in range(size):
        if step:
            selected[step] = int(torch.argmax(nearest))
        centre = points[selected[step]]
        # |x - c|^2 = |x|^2 - 2 x.c + |c|^2: one matrix-vector pass over the points per step.
        torch.mv(points, centre, out=squared)
        squared.mul_(-2.0).add_(sq_norms).add_(sq_norms[selected[step]])
        torch.minimum(nearest, squared, out=nearest)
        if progress and step % report_every == 0:
            progress(step, size)
    if progress:
        progress(size, size)
    return selected


@torch.no_grad()
def leave_one_out_maps(
    bank: LevelBank,
    embeddings: torch.Tensor,
    chosen: torch.Tensor,
    patches_per_image: int,
    grid: tuple[int, int],
) -> torch.Tensor:
    """Raw distance maps (n, h, w) of the bank's own images, each against the bank without them.

    A cheap out-of-sample map for every training image: calibration then rests
    on all good images, not only the few held out, so per-location statistics
    and the threshold's quantile are estimated from many more samples.
    """
    sources = chosen // patches_per_image
    maps = []
    squared = torch.empty(patches_per_image, chosen.shape[0])
    for index in range(embeddings.shape[0] // patches_per_image):
        own = embeddings[index * patches_per_image : (index + 1) * patches_per_image]
        bank.squared_distances(own, out=squared)
        squared[:, sources == index] = torch.inf
        maps.append(squared.min(dim=-1).values.clamp_min(0.0).sqrt().reshape(grid))
    return torch.stack(maps)


@torch.no_grad()
def fit_gaussian_head(
    head: GaussianHead,
    embeddings: torch.Tensor,
    n_images: int,
    grid: tuple[int, int],
    *,
    prior_images: float = 8.0,
    ridge: float = 0.01,
) -> torch.Tensor:
    """Fit ``head`` on one level's good embeddings (n * h * w, D); return their LOO maps (n, h, w).

    Each place's mean is shrunk towards the mean over places as if ``prior_images``
    more images had shown it (as ``patch_normalisation`` does). The covariance is
    pooled over places from the residuals about each place's own mean, plus
    ``ridge`` times its mean variance on the diagonal, so no direction that good
    images never varied in makes a hair-trigger. The maps returned score each
    image against the means of the others (exact, as a mean is cheap to leave
    one out of), so calibration sees out-of-sample values; the shared covariance,
    estimated from every patch, is left as is.
    """
    height, width = grid
    dim = embeddings.shape[1]
    points = embeddings.reshape(n_images, height * width, dim).double()
    local = points.mean(dim=0)
    overall = local.mean(dim=0)
    residual = (points - local).reshape(-1, dim)
    dof = max(1, residual.shape[0] - height * width)
    covariance = residual.T @ residual / dof
    del residual
    covariance += torch.eye(dim, dtype=covariance.dtype) * ridge * covariance.diagonal().mean()
    variances, directions = torch.linalg.eigh(covariance)
    whitening = directions / variances.clamp_min(1e-12).sqrt()
    weight = n_images / (n_images + prior_images)
    mean = weight * local + (1.0 - weight) * overall
    head.set_gaussian(mean.reshape(height, width, dim), whitening)
    if n_images < 2:
        return head.distances(embeddings.reshape(1, height, width, dim).float())
    loo_weight = (n_images - 1) / (n_images - 1 + prior_images)
    maps = []
    for index in range(n_images):
        others = (local * n_images - points[index]) / (n_images - 1)
        loo_mean = loo_weight * others + (1.0 - loo_weight) * overall
        whitened = (points[index] - loo_mean) @ whitening
        maps.append((whitened**2).sum(dim=-1).sqrt().reshape(height, width))
    return torch.stack(maps).float()


@torch.no_grad()
def distance_maps(
    model: PatchCoreModel, images: Sequence[ImageArray], *, batch_size: int = 8
) -> list[torch.Tensor]:
    """Raw nearest-neighbour distance maps (n, h_l, w_l) of resized images, per level."""
    batches = [model.level_distances(model.embed(batch)) for batch in _batches(images, batch_size)]
    return [torch.cat(level) for level in zip(*batches, strict=True)]


def patch_normalisation(
    maps: torch.Tensor, *, prior_images: float = 8.0, scale_floor: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-location mean and spread (h, w) of good images' distance maps (n, h, w).

    Each location's statistics are shrunk towards the whole map's, as if
    ``prior_images`` more images had shown the global figures, so a handful of
    calibration images cannot produce a wild baseline; the spread is kept at or
    above ``scale_floor`` times its median, so no location becomes hair-trigger.
    """
    count = float(maps.shape[0])
    weight = count / (count + prior_images)
    global_mean = maps.mean()
    global_var = maps.var() if maps.numel() > 1 else torch.tensor(0.0)
    local_var = maps.var(dim=0) if maps.shape[0] > 1 else torch.zeros_like(maps[0])
    location = weight * maps.mean(dim=0) + (1.0 - weight) * global_mean
    scale = (weight * local_var + (1.0 - weight) * global_var).sqrt()
    scale = scale.clamp_min(max(scale_floor * float(scale.median()), 1e-6))
    return location, scale


@torch.no_grad()
def out_of_fold_normalised(
    maps: torch.Tensor, *, folds: int = CALIBRATION_FOLDS, prior_images: float = 8.0
) -> torch.Tensor:
    """Good maps (n, h, w), each normalised by statistics of the other folds' maps.

    Scoring a map with statistics it helped estimate would understate normal
    scores and set the threshold too low; cross-fitting keeps every value out
    of sample.
    """
    count = maps.shape[0]
    folds = max(1, min(folds, count // 2))
    normalised = torch.empty_like(maps)
    for fold in range(folds):
        inside = torch.arange(count) % folds == fold
        others = maps[~inside] if folds > 1 else maps
        location, scale = patch_normalisation(others, prior_images=prior_images)
        normalised[inside] = (maps[inside] - location) / scale
    return normalised


def border_tail_factors(
    normalised: torch.Tensor,
    *,
    rings: int = BORDER_RINGS,
    quantile: float = TAIL_QUANTILE,
    max_factor: float = MAX_BORDER_FACTOR,
) -> torch.Tensor:
    """Extra spread (h, w) for the outer rings of patches, so their normal tail matches the rest.

    The image score is a maximum over places, so the place whose *normal* values
    reach highest sets the false-alarm floor. Even measured against their own mean
    and spread, patches next to the image border (the backbone's padding, a part
    cut by the frame) reach higher than the interior: on synthetic textures most
    good images scored highest in the outer 16 pixels. Each of the outer ``rings``
    gets the factor that brings its ``quantile`` of out-of-fold normalised good
    values down to the interior's, pooled over the ring so that few images do;
    never below 1 (no place is made more sensitive) nor above ``max_factor``.
    """
    height, width = normalised.shape[-2:]
    rows = torch.arange(height).unsqueeze(1)
    cols = torch.arange(width).unsqueeze(0)
    ring = torch.minimum(
        torch.minimum(rows, height - 1 - rows), torch.minimum(cols, width - 1 - cols)
    )
    factors = torch.ones(height, width)
    interior = normalised[:, ring >= rings]
    if interior.numel() == 0:
        return factors
    reference = float(torch.quantile(interior.flatten().double(), quantile))
    if reference <= 0.0:
        return factors
    for index in range(rings):
        outer = normalised[:, ring == index]
        if outer.numel():
            tail = float(torch.quantile(outer.flatten().double(), quantile))
            factors[ring == index] = min(max(tail / reference, 1.0), max_factor)
    return factors


@dataclass(frozen=True)
class CalibrationStats:
    """Location and scale of the held-out good scores, and the decision numbers."""

    location: float
    scale: float
    threshold: float
    uncertain_low: float
    n_images: int
    calibrated_scores: tuple[float, ...]


def calibration_stats(
    raw_scores: npt.NDArray[np.float64],
    *,
    target_false_alarm_rate: float,
    band_margin: float,
) -> CalibrationStats:
    """Turn held-out good scores into a z-scale and a threshold for the policy.

    The threshold is the (1 - target_false_alarm_rate) quantile of the
    calibrated good scores, so about that share of good parts raise an alarm;
    never below +1 standard deviation, so a tiny calibration set cannot put it
    in the middle of normal. The uncertain band reaches ``band_margin``
    standard deviations below the threshold.
    """
    location = float(np.mean(raw_scores))
    spread = float(np.std(raw_scores, ddof=1)) if raw_scores.size > 1 else 0.0
    # A floor on the scale keeps a near-constant calibration set from exploding the z-scores.
    scale = max(spread, 0.05 * abs(location), 1e-6)
    calibrated = (raw_scores - location) / scale
    quantile = float(np.quantile(calibrated, 1.0 - target_false_alarm_rate))
    threshold = max(quantile, 1.0)
    return CalibrationStats(
        location=location,
        scale=scale,
        threshold=threshold,
        uncertain_low=threshold - band_margin,
        n_images=int(raw_scores.size),
        calibrated_scores=tuple(float(value) for value in calibrated),
    )

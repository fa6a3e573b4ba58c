"""The detector's inference math as one plain module: pixels in, calibrated score and map out.

Everything after decode and resize lives here, so that the exported graph is
the whole detector: normalisation, backbone, local patch aggregation, each
patch's colour against its surroundings, nearest-neighbour distance to a
memory bank of normal patches at each feature level, per-location
normalisation, calibration, smoothing and the upsampled anomaly map.
Fitting lives in ``fitting.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast, get_args

import torch
import torch.nn.functional as F
from torch import nn

from cloud.detector.backbone import EfficientNetLiteFeatures
from cloud.train_settings import DensityHeadMode

__all__ = [
    "DENSITY_HEAD_MODES",
    "FINEST_STRIDE",
    "GaussianHead",
    "LevelBank",
    "PatchCoreModel",
    "gaussian_kernel",
]

# EfficientNet-Lite was trained on (x - 127) / 128 (in RGB order; see the backbone stem).
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0
FINEST_STRIDE = 8  # finer feature maps are pooled to this grid; the anomaly map lives on it
# A patch's colour is compared with the mean of this many patches square around it
# (200 px at stride 8): wider than any stain, narrow enough to follow a lighting gradient.
SURROUND_PATCHES = 25
# How a level's Gaussian density head joins its nearest-neighbour score (see
# PatchCoreModel.combine): off, the larger of the two, their mean, or the head alone.
DENSITY_HEAD_MODES: tuple[str, ...] = get_args(DensityHeadMode)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalised 2-D Gaussian as a (1, 1, k, k) conv weight."""
    radius = max(1, math.ceil(3.0 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    line = torch.exp(-(offsets**2) / (2.0 * sigma**2))
    kernel = torch.outer(line, line)
    return (kernel / kernel.sum()).reshape(1, 1, 2 * radius + 1, 2 * radius + 1)


class PlaceNormalised(nn.Module):
    """A per-patch scorer of one level, with its per-location baseline of normal scores."""

    def __init__(self) -> None:
        super().__init__()
        # Buffers, so they travel into the ONNX graph as constants; filled by fitting.
        # Per-location baseline of normal distances (h, w); identity until fitting sets it.
        self.register_buffer("patch_location", torch.zeros(1, 1))
        self.register_buffer("patch_scale", torch.ones(1, 1))

    def set_patch_normalisation(self, location: torch.Tensor, scale: torch.Tensor) -> None:
        """Install the per-location mean and spread (h, w) of distances on good images.

        Normal variation is not the same everywhere: patches at the image border see
        the backbone's zero padding, and parts have busy and plain regions. Measuring
        each patch against what is normal *at its place* keeps a busy border from
        outscoring a real defect in the middle.
        """
        self.patch_location = location.contiguous().float()
        self.patch_scale = scale.contiguous().float()

    def distances(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Raw distance map (N, h, w) of patch embeddings (N, h, w, D)."""
        raise NotImplementedError

    def normalise(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw distance maps (N, h, w) measured against the baseline at each place."""
        return (raw - self.patch_location) / self.patch_scale


class LevelBank(PlaceNormalised):
    """The memory bank of one feature level and its per-location baseline."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        # The bank is kept only as the matrix [-2 * bank^T; |bank|^2]: see ``offsets``.
        self.register_buffer("search_matrix", torch.zeros(dim + 1, 1))

    @property
    def size(self) -> int:
        """Entries in the bank."""
        return int(self.search_matrix.shape[1])

    def set_memory_bank(self, bank: torch.Tensor) -> None:
        """Install the coreset of normal patch embeddings (M, D)."""
        entries = bank.float()
        sq_norm = (entries**2).sum(dim=1)
        self.search_matrix = torch.cat([-2.0 * entries.T, sq_norm.unsqueeze(0)]).contiguous()

    def offsets(self, embeddings: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """|y|^2 - 2 x.y for each embedding x (..., D) and bank entry y (..., M).

        That is the squared distance less |x|^2, which does not change which entry
        is nearest. Appending a 1 to x makes it ONE MatMul against ``search_matrix``:
        far faster than cdist in ONNX Runtime and TensorRT, and no elementwise pass
        over the (patches x bank) matrix before the minimum.
        """
        ones = torch.ones_like(embeddings[..., :1])
        augmented = torch.cat([embeddings, ones], dim=-1)
        if out is None:
            return augmented @ self.search_matrix
        return torch.matmul(augmented, self.search_matrix, out=out)

    def squared_distances(
        self, embeddings: torch.Tensor, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Squared distance of each embedding (..., D) to every bank entry (..., M).

        ``out`` (..., M) is reused when given: fitting calls this once per image,
        and fresh matrices of that size each time fragment the heap (4.3 GB peak
        for 320 images instead of 0.8 GB).
        """
        offsets = self.offsets(embeddings, out)
        return offsets.add_((embeddings**2).sum(dim=-1, keepdim=True))

    def distances(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Euclidean distance of each embedding (..., D) to its nearest bank entry."""
        nearest = self.offsets(embeddings).min(dim=-1).values + (embeddings**2).sum(dim=-1)
        return nearest.clamp_min(0.0).sqrt()


class GaussianHead(PlaceNormalised):
    """A Gaussian density of one level's normal patches: Mahalanobis distance per patch.

    PaDiM-like, with a per-location mean and ONE covariance shared by all places
    (of the residuals from each place's mean), so it costs one (D x D) MatMul per
    patch and a (h, w, D) constant, where per-location covariances would carry a
    (D x D) matrix for every place. The covariance is stored as its whitening
    matrix W (W W^T = covariance^-1) and the mean already whitened, so the graph
    computes |x W - mean W|: the squared Mahalanobis distance, then its root.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("whitening", torch.eye(dim))
        self.register_buffer("whitened_mean", torch.zeros(1, 1, dim))

    def set_gaussian(self, mean: torch.Tensor, whitening: torch.Tensor) -> None:
        """Install the per-location mean (h, w, D) and the whitening matrix (D, D)."""
        self.whitening = whitening.contiguous().float()
        self.whitened_mean = (mean.float() @ self.whitening).contiguous()

    def distances(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Mahalanobis distance (N, h, w) of each embedding (N, h, w, D) at its place."""
        residual = embeddings @ self.whitening - self.whitened_mean
        return (residual**2).sum(dim=-1).sqrt()


class PatchCoreModel(nn.Module):
    """PatchCore-style scoring: distance of each patch to its nearest normal patch.

    Each feature level has its own memory bank, searched on its own grid: fine
    texture (stride 8) and part-level context (stride 16) each get a bank sized
    for what a search at that level costs, where one bank of concatenated
    features had to be small for both. A patch is as abnormal as its most
    abnormal level, each measured against its own normal spread.
    """

    def __init__(
        self,
        backbone: EfficientNetLiteFeatures,
        *,
        input_size: tuple[int, int],
        smoothing_sigma_patches: float = 0.5,
        colour_contrast_weight: float = 0.0,
        density_head: str = "off",
    ) -> None:
        super().__init__()
        if density_head not in DENSITY_HEAD_MODES:
            msg = f"density_head {density_head!r}: one of {', '.join(DENSITY_HEAD_MODES)}"
            raise ValueError(msg)
        self.backbone = backbone
        self.input_size = input_size
        self.colour_contrast_weight = float(colour_contrast_weight)
        self.density_head = density_head
        self.levels = nn.ModuleList(LevelBank(dim) for dim in self.level_dims)
        self.heads = nn.ModuleList(
            GaussianHead(dim) for dim in (self.level_dims if density_head != "off" else [])
        )
        self.register_buffer("score_location", torch.tensor(0.0))
        self.register_buffer("score_scale", torch.tensor(1.0))
        self.register_buffer("smoothing_kernel", gaussian_kernel(smoothing_sigma_patches))
        self.eval()

    @property
    def level_dims(self) -> list[int]:
        """Embedding width of each level: the finest also carries 3 colour-contrast channels."""
        dims = list(self.backbone.channels)
        if self.colour_contrast_weight > 0.0:
            dims[0] += 3
        return dims

    @property
    def banks(self) -> list[LevelBank]:
        """The level banks, finest first."""
        return [cast(LevelBank, level) for level in self.levels]

    @property
    def gaussian_heads(self) -> list[GaussianHead]:
        """The levels' Gaussian density heads, finest first; none when the head is off."""
        return [cast(GaussianHead, head) for head in self.heads]

    @property
    def searches_banks(self) -> bool:
        """Whether the graph searches the memory banks (all modes but the head alone)."""
        return self.density_head != "alone"

    @property
    def scorers(self) -> list[PlaceNormalised]:
        """What makes each raw map, in ``level_distances``' order: banks, then heads."""
        banks: list[PlaceNormalised] = list(self.banks) if self.searches_banks else []
        return banks + list(self.gaussian_heads)

    def set_calibration(self, location: float, scale: float) -> None:
        """Install the affine map from combined normalised maps to calibrated scores."""
        self.score_location = torch.tensor(float(location))
        self.score_scale = torch.tensor(float(scale))

    def embed(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Patch embeddings (N, h_l, w_l, D_l) of each level for a uint8 NHWC BGR batch.

        Input sides are multiples of 32 (``model_input_shape`` makes them so), so
        every level's grid divides the input evenly.
        """
        # BGR stays BGR: the backbone's stem takes it in that order.
        normalised = ((image.float() - PIXEL_MEAN) / PIXEL_STD).permute(0, 3, 1, 2)
        grid = self.patch_grid(normalised.shape[-2:])
        embedded = []
        for features in self.backbone(normalised):
            # Maps finer than the stride-8 grid are average-pooled down to it, so the
            # number of patches (and the search) stays bounded. A 3x3 neighbourhood
            # average gives each patch context (PatchCore's local aggregation).
            if features.shape[-1] > grid[1]:
                factor = features.shape[-1] // grid[1]
                features = F.avg_pool2d(features, kernel_size=factor, stride=factor)
            features = F.avg_pool2d(features, 3, stride=1, padding=1, count_include_pad=False)
            embedded.append(features.permute(0, 2, 3, 1))
        if self.colour_contrast_weight > 0.0:
            contrast = self.colour_contrast(normalised).permute(0, 2, 3, 1)
            embedded[0] = torch.cat([embedded[0], contrast], dim=-1)
        return embedded

    def colour_contrast(self, normalised: torch.Tensor) -> torch.Tensor:
        """Each patch's mean colour less its surroundings' (N, 3, h, w), weighted.

        Backbone features hardly change when a patch of texture turns a little
        darker or takes a tint, as under a stain, oil or a faint spot: the weave or
        grain is still there. People see such a patch at once, because it differs
        from the texture around it. Measured against its surroundings, a patch's
        colour ignores gain, offset and lighting gradients, which good images have
        too. The weight is in feature-distance units per unit of normalised pixel
        value (full range 2): at 32, a shift of 10 grey levels adds 2.5, about a
        quarter of a typical nearest-neighbour distance.
        """
        colour = F.avg_pool2d(normalised, FINEST_STRIDE, stride=FINEST_STRIDE)
        colour = F.avg_pool2d(colour, 3, stride=1, padding=1, count_include_pad=False)
        # A box mean, in two 1-D passes (exact: the count of patches inside the image
        # factorises too); one 25x25 pass costs 0.7 ms in ONNX Runtime, these two 0.1.
        half = SURROUND_PATCHES // 2
        surround = F.avg_pool2d(
            colour, (SURROUND_PATCHES, 1), stride=1, padding=(half, 0), count_include_pad=False
        )
        surround = F.avg_pool2d(
            surround, (1, SURROUND_PATCHES), stride=1, padding=(0, half), count_include_pad=False
        )
        return (colour - surround) * self.colour_contrast_weight

    @staticmethod
    def patch_grid(size: torch.Size | tuple[int, int]) -> tuple[int, int]:
        """The stride-8 patch grid of an input size: where the anomaly map lives."""
        return (
            (int(size[0]) + FINEST_STRIDE - 1) // FINEST_STRIDE,
            (int(size[1]) + FINEST_STRIDE - 1) // FINEST_STRIDE,
        )

    @torch.no_grad()
    def level_grids(self) -> list[tuple[int, int]]:
        """The patch grid (h_l, w_l) of each level at the model's input size."""
        blank = torch.zeros(1, *self.input_size, 3, dtype=torch.uint8)
        return [(int(level.shape[1]), int(level.shape[2])) for level in self.embed(blank)]

    def level_distances(self, embeddings: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Raw maps (N, h_l, w_l): each level's nearest-neighbour distances, then its head's.

        Without a density head, one map per level; with the head alone, the heads'.
        """
        return [
            scorer.distances(level)
            for scorer, level in zip(self.scorers, self.scorer_inputs(embeddings), strict=True)
        ]

    def scorer_inputs(self, embeddings: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The level embeddings each of ``scorers`` reads, in its order."""
        banks = list(embeddings) if self.searches_banks else []
        return banks + (list(embeddings) if self.gaussian_heads else [])

    def combine(self, normalised: Sequence[torch.Tensor]) -> torch.Tensor:
        """Normalised maps (``scorers`` order) into one map (N, h, w) on the stride-8 grid.

        A patch is as abnormal as its most abnormal map; with ``density_head`` "mean",
        each level's nearest-neighbour and density maps are averaged first.
        """
        if self.density_head == "mean":
            count = len(self.banks)
            normalised = [
                (knn + density) * 0.5
                for knn, density in zip(normalised[:count], normalised[count:], strict=True)
            ]
        grid = self.patch_grid(self.input_size)
        on_grid = [
            level
            if tuple(level.shape[-2:]) == grid
            else F.interpolate(
                level.unsqueeze(1), size=grid, mode="bilinear", align_corners=False
            ).squeeze(1)
            for level in normalised
        ]
        combined = on_grid[0]
        for level in on_grid[1:]:
            combined = torch.maximum(combined, level)
        return combined

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (image_score (N,), anomaly_map (N, H, W)) on the calibrated scale."""
        return self.score_levels(self.level_distances(self.embed(image)))

    def score_levels(self, raw: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalise each raw map per location, combine, then score."""
        normalised = [
            scorer.normalise(level) for scorer, level in zip(self.scorers, raw, strict=True)
        ]
        return self.score_normalised(self.combine(normalised))

    def score_normalised(self, normalised: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrate, smooth and upsample combined maps (N, h, w) into score and map."""
        calibrated = ((normalised - self.score_location) / self.score_scale).unsqueeze(1)
        kernel = cast(torch.Tensor, self.smoothing_kernel)
        pad = kernel.shape[-1] // 2
        smoothed = F.conv2d(F.pad(calibrated, [pad] * 4, mode="replicate"), kernel)
        image_score = smoothed.amax(dim=(1, 2, 3))
        anomaly_map = F.interpolate(
            smoothed, size=self.input_size, mode="bilinear", align_corners=False
        ).squeeze(1)
        return image_score, anomaly_map

"""Surfaces of the synthetic categories: real texture photos, procedural materials, an object.

Each category turns a random generator into one surface, float32 ``(H, W, C)`` in
[0, 1] with ``C`` 1 (grey) or 3 (RGB). Two good parts of one category are never
pixel-identical: each is a different window of the material, slightly rotated
and shifted, with small changes of tone and texture, as parts on a real line are.
The object categories (``washer``, placed by a fixture, and ``loose_washer``,
dropped anywhere at any turn) are a whole part on a belt, as MVTec AD's objects
are: their defects land on the part, never on the belt.
The photos (``brick``, ``gravel``) are the PNG files inside scikit-image's wheel,
read straight from disk: nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

import cv2
import numpy as np
from numpy.typing import NDArray

from cloud.errors import DatasetError
from cloud.synth.shapes import FloatImage, blurred_noise, smooth_field

__all__ = ["CATEGORIES", "Category", "resolve_category"]

logger = logging.getLogger(__name__)

SurfaceMaker = Callable[[np.random.Generator, int, int], FloatImage]
RegionFinder = Callable[[FloatImage], NDArray[np.bool_]]

# Materials are designed at 256 px; other sizes scale feature sizes with the image.
_DESIGN_SIDE_PX = 256.0
# Pose variation between parts: a part never sits at exactly the same place.
_MAX_ROTATION_DEG = 2.5
_MAX_SHIFT_FRACTION = 0.02


@dataclass(frozen=True)
class Category:
    """One synthetic material: its name, channel count and surface maker."""

    name: str
    channels: int
    description: str
    make_surface: SurfaceMaker
    # Where on a surface a defect may land (an object's pixels); None: anywhere.
    defect_region: RegionFinder | None = None


def _pose_sample(
    source: FloatImage,
    rng: np.random.Generator,
    height: int,
    width: int,
    window_px: float,
) -> FloatImage:
    """Cut a rotated, shifted window of ``source`` and resample it to ``height`` x ``width``.

    ``window_px`` is the source extent mapped onto the longer output side, so
    one call does crop, scale, rotation and shift with a single interpolation.
    """
    src_h, src_w = source.shape[:2]
    scale = window_px / max(height, width)
    angle = np.deg2rad(rng.uniform(-_MAX_ROTATION_DEG, _MAX_ROTATION_DEG))
    cos_a, sin_a = np.cos(angle) * scale, np.sin(angle) * scale
    half_w = 0.5 * (abs(cos_a) * width + abs(sin_a) * height)
    half_h = 0.5 * (abs(sin_a) * width + abs(cos_a) * height)
    # The centre lands anywhere the rotated window still fits: that is the shift.
    low_x, high_x = half_w + 1.0, src_w - half_w - 1.0
    low_y, high_y = half_h + 1.0, src_h - half_h - 1.0
    centre_x = rng.uniform(low_x, high_x) if high_x > low_x else src_w / 2.0
    centre_y = rng.uniform(low_y, high_y) if high_y > low_y else src_h / 2.0
    # Inverse map: output pixel (x, y) -> source point centre + R * (p - output centre).
    matrix = np.array(
        [
            [cos_a, -sin_a, centre_x - cos_a * width / 2.0 + sin_a * height / 2.0],
            [sin_a, cos_a, centre_y - sin_a * width / 2.0 - cos_a * height / 2.0],
        ],
        dtype=np.float64,
    )
    warped = cv2.warpAffine(
        source,
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
    return warped.reshape(height, width, -1).astype(np.float32)


def _canvas_side(height: int, width: int) -> int:
    """A square canvas large enough to hold the output rotated and shifted."""
    return int(np.ceil(np.hypot(height, width) * (1.0 + 2 * _MAX_SHIFT_FRACTION))) + 4


def _scale(height: int, width: int) -> float:
    return min(height, width) / _DESIGN_SIDE_PX


def _anisotropic(rng: np.random.Generator, side: int, sigma_x: float, sigma_y: float) -> FloatImage:
    return blurred_noise(rng, side, side, sigma_x, sigma_y)


def _brushed_metal(rng: np.random.Generator, height: int, width: int) -> FloatImage:
    """Brushed steel: fine streaks along one direction over a slightly mottled grey."""
    scale = _scale(height, width)
    side = _canvas_side(height, width)
    level = rng.uniform(0.50, 0.62)
    long_streaks = _anisotropic(rng, side, rng.uniform(14.0, 26.0) * scale, 0.55 * scale)
    short_streaks = _anisotropic(rng, side, rng.uniform(2.5, 4.0) * scale, 0.5 * scale)
    mottle = smooth_field(rng, side, side, 24.0 * scale)
    grain = rng.standard_normal((side, side), dtype=np.float32)
    surface = (
        level
        + rng.uniform(0.030, 0.050) * long_streaks
        + rng.uniform(0.010, 0.020) * short_streaks
        + rng.uniform(0.010, 0.025) * mottle
        + 0.006 * grain
    ).astype(np.float32)
    return _pose_sample(surface, rng, height, width, float(max(height, width)))


def _woven_fabric(rng: np.random.Generator, height: int, width: int) -> FloatImage:
    """A 2/1 twill (denim-like): blue warp over an off-white weft, with uneven threads."""
    scale = _scale(height, width)
    side = _canvas_side(height, width)
    period = max(3.0, rng.uniform(7.4, 8.6) * scale)
    # The weave is separable: per-row and per-column profiles, broadcast to the canvas.
    cells = np.arange(side, dtype=np.float32) / np.float32(period)
    index = np.floor(cells).astype(np.int64)
    across = np.sqrt(np.sin(np.pi * (cells - index))).astype(np.float32)
    along = (0.85 + 0.15 * np.sin(np.pi * (cells - index))).astype(np.float32)
    n_threads = int(index[-1]) + 1
    warp_tone = (1.0 + rng.normal(0.0, 0.05, n_threads)).astype(np.float32)[index]
    weft_tone = (1.0 + rng.normal(0.0, 0.05, n_threads)).astype(np.float32)[index]
    warp_on_top = (index[None, :] - index[:, None]) % 3 < 2
    # Thread cross-sections are round: bright in the middle, dark in the gaps.
    warp_shade = (across * warp_tone)[:, None] * along[None, :]
    weft_shade = (across * weft_tone)[None, :] * along[:, None]
    warp_shade *= 1.0 + 0.06 * _anisotropic(rng, side, 3.0 * scale, 0.4)
    weft_shade *= 1.0 + 0.06 * _anisotropic(rng, side, 0.4, 3.0 * scale)
    warp_colour = (np.array([0.20, 0.30, 0.52]) + rng.normal(0.0, 0.02, 3)).astype(np.float32)
    weft_colour = (np.array([0.78, 0.76, 0.70]) + rng.normal(0.0, 0.02, 3)).astype(np.float32)
    tone = 0.92 * (1.0 + 0.04 * smooth_field(rng, side, side, 30.0 * scale))
    warp = (warp_shade * tone)[..., None] * warp_colour
    weft = (weft_shade * tone)[..., None] * weft_colour
    surface = np.where(warp_on_top[..., None], warp, weft) + np.float32(0.08)
    return _pose_sample(surface.astype(np.float32), rng, height, width, float(max(height, width)))


def _wood(rng: np.random.Generator, height: int, width: int) -> FloatImage:
    """Planed wood: growth rings bent by slow warping, with fine fibres along the grain."""
    scale = _scale(height, width)
    side = _canvas_side(height, width)
    coords = np.arange(side, dtype=np.float32)
    bend = np.float32(rng.uniform(-0.4, 0.4)) * (coords - side / 2.0) ** 2 / side
    warp = np.float32(rng.uniform(6.0, 12.0) * scale) * smooth_field(rng, side, side, 40.0 * scale)
    wobble = np.float32(1.5 * scale) * smooth_field(rng, side, side, 8.0 * scale)
    period = np.float32(rng.uniform(14.0, 22.0) * scale)
    phase = (coords[:, None] + bend[None, :] + warp + wobble) / period
    rings = (0.5 - 0.5 * np.cos(np.float32(2.0 * np.pi) * (phase + np.float32(rng.random())))) ** 3
    fibres = _anisotropic(rng, side, rng.uniform(20.0, 35.0) * scale, 0.6 * scale)
    pores = _anisotropic(rng, side, 3.0 * scale, 0.5)
    tone = np.clip(0.25 + 0.55 * rings + 0.08 * fibres + 0.05 * pores, 0.0, 1.0)
    light = (np.array([0.80, 0.62, 0.42]) + rng.normal(0.0, 0.02, 3)).astype(np.float32)
    dark = (np.array([0.50, 0.32, 0.18]) + rng.normal(0.0, 0.02, 3)).astype(np.float32)
    surface = light + (dark - light) * tone[..., None]
    return _pose_sample(surface.astype(np.float32), rng, height, width, float(max(height, width)))


@lru_cache(maxsize=4)
def _photo(name: str) -> FloatImage:
    """A grey texture photo from scikit-image's data folder, read without importing skimage."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        msg = f"category photo {name}: scikit-image is not installed; install linewatch[cloud]"
        raise DatasetError(msg)
    path = Path(spec.origin).parent / "data" / f"{name}.png"
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        msg = f"category photo {path}: missing or unreadable; reinstall scikit-image"
        raise DatasetError(msg)
    logger.debug("loaded texture photo name=%s path=%s", name, path)
    photo = (image.astype(np.float32) / 255.0)[..., None]
    photo.setflags(write=False)
    return photo


def _photo_window(rng: np.random.Generator, name: str, height: int, width: int) -> FloatImage:
    photo = _photo(name)
    window_px = 0.55 * min(photo.shape[:2]) * rng.uniform(0.95, 1.05)
    grey = _pose_sample(photo, rng, height, width, window_px)
    contrast = rng.uniform(0.95, 1.05)
    mean = float(grey.mean())
    return (mean + (grey - mean) * contrast).astype(np.float32)


# Grey level of the brick photo -> RGB: dark brick, brick, fired edge, mortar, light mortar.
_BRICK_KNOTS = np.array([0.30, 0.40, 0.52, 0.62, 0.80])
_BRICK_COLOURS = np.array(
    [
        [0.42, 0.15, 0.10],
        [0.62, 0.27, 0.17],
        [0.66, 0.42, 0.32],
        [0.73, 0.71, 0.66],
        [0.86, 0.85, 0.80],
    ]
)


def _brick(rng: np.random.Generator, height: int, width: int) -> FloatImage:
    """Brick paving (a real photo) coloured red with grey mortar."""
    grey = _photo_window(rng, "brick", height, width)[..., 0]
    colours = _BRICK_COLOURS * rng.uniform(0.95, 1.05, 3)
    channels = [np.interp(grey, _BRICK_KNOTS, colours[:, index]) for index in range(3)]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0).astype(np.float32)


def _gravel(rng: np.random.Generator, height: int, width: int) -> FloatImage:
    """Gravel aggregate (a real photo), grey."""
    return _photo_window(rng, "gravel", height, width)


def _washer(rng: np.random.Generator, height: int, width: int) -> FloatImage:
    """A washer placed by a fixture: its pose varies a little (shift, turn of the notch)."""
    return _washer_on_belt(rng, height, width, max_shift=0.02, max_turn_deg=4.0)


def _loose_washer(rng: np.random.Generator, height: int, width: int) -> FloatImage:
    """A washer dropped on the belt: anywhere near the middle, the notch at any angle.

    Unaligned parts (MVTec AD's screw) are where a per-location baseline could
    mistake a part's unusual place for a defect; this category keeps that honest.
    """
    return _washer_on_belt(rng, height, width, max_shift=0.12, max_turn_deg=180.0)


def _washer_on_belt(
    rng: np.random.Generator, height: int, width: int, *, max_shift: float, max_turn_deg: float
) -> FloatImage:
    """A turned steel washer with a key notch on a dark belt, lit from the upper left.

    Size and tone vary slightly; the turning leaves fine concentric rings, the
    bevel catches the light. ``max_shift`` is a fraction of the shorter side.
    """
    side = min(height, width)
    belt = (
        rng.uniform(0.08, 0.13)
        + 0.015 * smooth_field(rng, height, width, 20.0 * side / _DESIGN_SIDE_PX)
        + 0.01 * rng.standard_normal((height, width), dtype=np.float32)
    )
    centre_x = width / 2.0 + rng.uniform(-max_shift, max_shift) * side
    centre_y = height / 2.0 + rng.uniform(-max_shift, max_shift) * side
    outer = 0.36 * side * rng.uniform(0.99, 1.01)
    inner = 0.15 * side * rng.uniform(0.99, 1.01)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    dx, dy = xs - np.float32(centre_x), ys - np.float32(centre_y)
    radius = np.hypot(dx, dy)
    # Anti-aliased coverage of the ring (one pixel of soft edge), less the key notch.
    ring = np.clip(outer - radius + 0.5, 0.0, 1.0) * np.clip(radius - inner + 0.5, 0.0, 1.0)
    notch_at = np.deg2rad(-90.0 + rng.uniform(-max_turn_deg, max_turn_deg))
    notch_half = np.float32(0.06 * side)
    across = np.abs(-np.sin(notch_at) * dx + np.cos(notch_at) * dy)
    along = np.cos(notch_at) * dx + np.sin(notch_at) * dy
    in_notch = np.clip(notch_half - across + 0.5, 0.0, 1.0) * np.clip(
        along - (outer - 0.08 * side) + 0.5, 0.0, 1.0
    )
    coverage = ring * (1.0 - in_notch)
    period = np.float32(rng.uniform(2.6, 3.2) * side / _DESIGN_SIDE_PX)
    turning = 0.025 * np.sin(2.0 * np.pi * radius / period + rng.uniform(0, 2 * np.pi))
    light = 0.06 * (-(dx + dy) / (np.float32(np.sqrt(2.0)) * np.float32(outer)))
    # The outer bevel: bright where it faces the light, dark where it faces away.
    bevel_width = 0.025 * side
    on_bevel = np.clip((radius - (outer - bevel_width)) / bevel_width, 0.0, 1.0)
    facing = -(dx + dy) / (np.float32(np.sqrt(2.0)) * np.maximum(radius, 1.0))
    steel = (
        rng.uniform(0.52, 0.60)
        + turning
        + light
        + 0.25 * on_bevel * facing
        + 0.012 * smooth_field(rng, height, width, 12.0 * side / _DESIGN_SIDE_PX)
        + 0.008 * rng.standard_normal((height, width), dtype=np.float32)
    )
    surface = np.clip(belt + (steel - belt) * coverage, 0.0, 1.0)
    return np.asarray(surface[..., None], dtype=np.float32)


def _bright_part(surface: FloatImage) -> NDArray[np.bool_]:
    """The washer's face: bright pixels, eroded so that a defect stays off its edges."""
    part = (surface.mean(axis=-1) > 0.3).astype(np.uint8)
    margin = max(1, round(0.03 * min(surface.shape[:2])))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    return np.asarray(cv2.erode(part, kernel), dtype=bool)


CATEGORIES = MappingProxyType(
    {
        category.name: category
        for category in (
            Category("metal", 1, "brushed steel, procedural, grey", _brushed_metal),
            Category("fabric", 3, "twill weave, procedural, colour", _woven_fabric),
            Category("wood", 3, "planed wood grain, procedural, colour", _wood),
            Category("brick", 3, "brick paving, scikit-image photo, colour", _brick),
            Category("gravel", 1, "gravel aggregate, scikit-image photo, grey", _gravel),
            Category(
                "washer",
                1,
                "turned steel washer on a belt (an object), procedural, grey",
                _washer,
                defect_region=_bright_part,
            ),
            Category(
                "loose_washer",
                1,
                "the washer anywhere on the belt at any turn (an unaligned object), grey",
                _loose_washer,
                defect_region=_bright_part,
            ),
        )
    }
)


def resolve_category(name: str) -> Category:
    """Look a category up by name.

    Raises:
        DatasetError: the name is unknown; the message lists the valid ones.
    """
    category = CATEGORIES.get(name)
    if category is None:
        msg = f"category {name!r} is unknown; choose one of: {', '.join(CATEGORIES)}"
        raise DatasetError(msg)
    return category

"""Defect painters: scratch, crack, spot, missing material, contamination.

Each painter blends one defect into a surface (float32 ``(H, W, C)`` in [0, 1])
with soft edges and shading, and returns the pixel mask of the damage (uint8,
255 = defect). Size, position, shape and contrast are random; a quarter of
the defects are subtle (low contrast) so that a detector is not judged only on
the obvious ones.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from numpy.typing import NDArray

from cloud.errors import DatasetError
from cloud.synth.shapes import (
    FloatImage,
    blob_outline,
    coverage_of_polygons,
    coverage_of_strokes,
    crack_strokes,
    curved_stroke,
    random_centre,
    smooth_field,
    wandering_stroke,
)

__all__ = ["DEFECT_TYPES", "Mask", "paint_defect"]

Mask = NDArray[np.uint8]
Painter = Callable[[FloatImage, np.random.Generator, float], tuple[FloatImage, FloatImage]]

DEFECT_TYPES: tuple[str, ...] = (
    "scratch",
    "crack",
    "spot",
    "missing_material",
    "contamination",
)

_SUBTLE_SHARE = 0.25
_MAX_ATTEMPTS = 8
_IN_REGION = 0.6  # share of a defect's mask that must lie inside the allowed region
# Foreign colours (RGB) for contamination: oil, rust, blue paint, green, red, yellow, dust.
_FOREIGN_COLOURS = np.array(
    [
        [0.10, 0.08, 0.05],
        [0.55, 0.28, 0.10],
        [0.15, 0.30, 0.75],
        [0.20, 0.55, 0.25],
        [0.75, 0.15, 0.12],
        [0.85, 0.75, 0.20],
        [0.92, 0.92, 0.90],
    ]
)


def _strength(rng: np.random.Generator) -> float:
    """A contrast multiplier: subtle (0.45-0.65) for a quarter of defects, else 0.75-1.

    Subtle still means visible to an inspector at a glance, as in the MVTec AD
    images the detector is judged on; fainter marks are not defects a line rejects.
    """
    if rng.random() < _SUBTLE_SHARE:
        return float(rng.uniform(0.45, 0.65))
    return float(rng.uniform(0.75, 1.0))


def _scale(surface: FloatImage) -> float:
    return float(min(surface.shape[:2])) / 256.0


def _lighten(surface: FloatImage, amount: FloatImage) -> FloatImage:
    return (surface + (1.0 - surface) * amount[..., None]).astype(np.float32)


def _darken(surface: FloatImage, amount: FloatImage) -> FloatImage:
    return (surface * (1.0 - amount[..., None])).astype(np.float32)


def _blur(image: FloatImage, sigma_px: float) -> FloatImage:
    if sigma_px <= 0.0:
        return image
    blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma_px, borderType=cv2.BORDER_REFLECT)
    return blurred.reshape(image.shape).astype(np.float32)


def _fade(rng: np.random.Generator, surface: FloatImage, floor: float) -> FloatImage:
    """A slowly varying factor in [floor, 1]: real strokes are uneven along their length."""
    height, width = surface.shape[:2]
    field = smooth_field(rng, height, width, 20.0 * _scale(surface))
    return (floor + (1.0 - floor) * (0.5 + 0.5 * np.tanh(field))).astype(np.float32)


def _scratch(
    surface: FloatImage, rng: np.random.Generator, strength: float
) -> tuple[FloatImage, FloatImage]:
    height, width = surface.shape[:2]
    side, scale = min(height, width), _scale(surface)
    path = curved_stroke(rng, random_centre(rng, height, width), rng.uniform(0.2, 0.7) * side)
    thickness = max(1, round(rng.uniform(1.5, 3.0) * scale))
    coverage = _blur(coverage_of_strokes(height, width, [(path, thickness)]), 0.5 * scale)
    amount = coverage * _fade(rng, surface, 0.6) * rng.uniform(0.6, 0.9) * strength
    if rng.random() < 0.6:  # a fresh scratch catches the light; an old one holds dirt
        return _lighten(surface, amount), coverage
    return _darken(surface, amount), coverage


def _crack(
    surface: FloatImage, rng: np.random.Generator, strength: float
) -> tuple[FloatImage, FloatImage]:
    height, width = surface.shape[:2]
    side, scale = min(height, width), _scale(surface)
    strokes = crack_strokes(
        rng,
        random_centre(rng, height, width, margin=0.25),
        rng.uniform(0.2, 0.5) * side,
        step_px=max(1.5, 2.0 * scale),
    )
    trunk = max(1, round(rng.uniform(1.2, 2.2) * scale))
    drawn = [(path, trunk if depth == 0 else max(1, trunk - 1)) for path, depth in strokes]
    coverage = _blur(coverage_of_strokes(height, width, drawn), 0.4 * scale)
    depth = coverage * _fade(rng, surface, 0.6) * rng.uniform(0.6, 0.9) * strength
    cracked = _darken(surface, depth)
    # The broken edge opposite the light shows as a faint bright lip.
    shift = max(1, round(scale))
    shifted = np.zeros_like(coverage)
    shifted[shift:, shift:] = coverage[:-shift, :-shift]
    lip = np.clip(shifted - coverage, 0.0, 1.0)
    return _lighten(cracked, lip * 0.25 * strength), coverage


def _spot(
    surface: FloatImage, rng: np.random.Generator, strength: float
) -> tuple[FloatImage, FloatImage]:
    height, width = surface.shape[:2]
    side = min(height, width)
    radius = rng.uniform(0.03, 0.10) * side
    outline = blob_outline(
        rng, random_centre(rng, height, width), radius, elongation=rng.uniform(0.8, 1.3)
    )
    hard = coverage_of_polygons(height, width, [outline])
    coverage = _blur(hard, radius * rng.uniform(0.15, 0.35))
    # A spot dulls the texture under it before it changes its tone.
    dulled = (
        surface + (_blur(surface, 1.5 * _scale(surface)) - surface) * (0.5 * coverage)[..., None]
    )
    amount = coverage * rng.uniform(0.3, 0.6) * strength
    if rng.random() < 0.6:
        tint = np.array([0.9, 1.0, 1.15], dtype=np.float32)[: surface.shape[2]]
        darker = dulled * (1.0 - amount[..., None] * tint)
        return np.clip(darker, 0.0, 1.0).astype(np.float32), coverage
    return _lighten(dulled.astype(np.float32), amount), coverage


def _missing_material(
    surface: FloatImage, rng: np.random.Generator, strength: float
) -> tuple[FloatImage, FloatImage]:
    height, width = surface.shape[:2]
    side, scale = min(height, width), _scale(surface)
    radius = rng.uniform(0.025, 0.09) * side
    outline = blob_outline(
        rng, random_centre(rng, height, width), radius, irregularity=0.3, n_points=96
    )
    hole = _blur(coverage_of_polygons(height, width, [outline]), 0.6 * scale)
    # What shows through: a dark, unevenly lit cavity; subtle holes are shallow.
    floor_level = float(surface.mean()) * (1.0 - 0.85 * max(strength, 0.5)) + rng.uniform(0.0, 0.06)
    cavity = floor_level * (1.0 + 0.25 * smooth_field(rng, height, width, 4.0 * scale))
    filled = surface * (1.0 - hole[..., None]) + (cavity * hole)[..., None]
    # A bevelled rim: the broken edge facing the light brightens, the other side darkens.
    rim = _blur(hole, max(1.0, 1.8 * scale))
    grad_y, grad_x = np.gradient(rim)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    facing = -(grad_x * np.cos(angle) + grad_y * np.sin(angle)) * radius * 0.8
    bevel = np.clip(facing, -1.0, 1.0) * (1.0 - hole) * 0.5 * strength
    shaded = _lighten(filled.astype(np.float32), np.clip(bevel, 0.0, 1.0))
    shaded = _darken(shaded, np.clip(-bevel, 0.0, 1.0))
    return shaded, np.maximum(hole, (rim > 0.3).astype(np.float32))


def _foreign_colour(rng: np.random.Generator, surface: FloatImage) -> NDArray[np.float32]:
    mean = surface.reshape(-1, surface.shape[2]).mean(axis=0)
    if surface.shape[2] == 1:
        level = rng.uniform(0.05, 0.28) if mean[0] > 0.45 else rng.uniform(0.72, 0.95)
        return np.array([level], dtype=np.float32)
    distance = np.linalg.norm(_FOREIGN_COLOURS - mean, axis=1)
    candidates = _FOREIGN_COLOURS[distance > 0.3]
    choice = candidates[rng.integers(len(candidates))] if len(candidates) else 1.0 - mean
    return np.asarray(choice, dtype=np.float32)


def _contamination(
    surface: FloatImage, rng: np.random.Generator, strength: float
) -> tuple[FloatImage, FloatImage]:
    height, width = surface.shape[:2]
    side, scale = min(height, width), _scale(surface)
    colour = _foreign_colour(rng, surface)
    centre = random_centre(rng, height, width)
    if rng.random() < 0.4:  # a fibre or hair lying on the part
        path = wandering_stroke(
            rng, centre, rng.uniform(0.2, 0.5) * side, step_px=max(1.5, 3.0 * scale), turn_rad=0.15
        )
        coverage = coverage_of_strokes(height, width, [(path, max(1, round(1.5 * scale)))])
        coverage = _blur(coverage, 0.4 * scale)
        opacity = coverage * rng.uniform(0.55, 0.95) * max(strength, 0.6)
        texture = np.ones((height, width, 1), dtype=np.float32)
    else:  # a stain of oil, paint or dust: overlapping blobs with a texture of its own
        radius = rng.uniform(0.035, 0.09) * side
        outlines = [
            blob_outline(
                rng, centre + rng.normal(0.0, radius * 0.6, 2), radius * rng.uniform(0.5, 1.0)
            )
            for _ in range(int(rng.integers(2, 5)))
        ]
        coverage = _blur(coverage_of_polygons(height, width, outlines), radius * 0.2)
        opacity = coverage * rng.uniform(0.45, 0.85) * strength
        texture = (1.0 + 0.12 * smooth_field(rng, height, width, 1.2 * scale))[..., None]
    # Keep some of the part's shading under the contaminant so it sits on the surface.
    shading = np.sqrt(np.clip(surface / max(float(surface.mean()), 1e-3), 0.2, 2.0))
    foreign = np.clip(colour * texture * shading, 0.0, 1.0)
    blended = surface * (1.0 - opacity[..., None]) + foreign * opacity[..., None]
    return blended.astype(np.float32), coverage


_PAINTERS: dict[str, Painter] = {
    "scratch": _scratch,
    "crack": _crack,
    "spot": _spot,
    "missing_material": _missing_material,
    "contamination": _contamination,
}


def paint_defect(
    surface: FloatImage,
    defect_type: str,
    rng: np.random.Generator,
    region: NDArray[np.bool_] | None = None,
) -> tuple[FloatImage, Mask]:
    """Blend one random defect of ``defect_type`` into a surface.

    Args:
        surface: float32 ``(H, W, C)`` in [0, 1]; not modified.
        defect_type: one of ``DEFECT_TYPES``.
        rng: the image's generator, so the defect follows from the image seed.
        region: where the defect must lie (most of its mask), e.g. an object's
            face; None for anywhere. Defects are redrawn until one fits.

    Returns:
        The damaged surface (float32, same shape) and its mask (uint8 ``(H, W)``,
        255 where the defect is), never empty.

    Raises:
        DatasetError: an unknown defect type, or an image too small to hold one.
    """
    painter = _PAINTERS.get(defect_type)
    if painter is None:
        msg = f"defect type {defect_type!r} is unknown; choose one of: {', '.join(DEFECT_TYPES)}"
        raise DatasetError(msg)
    kernel = np.ones((3, 3), dtype=np.uint8)
    attempts = _MAX_ATTEMPTS if region is None else 4 * _MAX_ATTEMPTS
    for _ in range(attempts):
        damaged, coverage = painter(surface, rng, _strength(rng))
        mask = np.asarray(cv2.dilate((coverage > 0.25).astype(np.uint8) * 255, kernel), np.uint8)
        if region is not None and mask.any():
            if (mask > 0)[region].sum() < _IN_REGION * (mask > 0).sum():
                continue
            # What reaches past the part's face stops at its edge, as a scratch on a part does.
            damaged = np.where(region[..., None], damaged, surface)
            mask = np.where(region, mask, 0).astype(np.uint8)
        if mask.any():
            return np.clip(damaged, 0.0, 1.0).astype(np.float32), mask
    msg = (
        f"defect {defect_type}: no visible defect fits a {surface.shape[1]}x{surface.shape[0]} "
        "image; use a larger --size"
    )
    raise DatasetError(msg)

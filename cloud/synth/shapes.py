"""Random geometry for defect painters: blobs, curved strokes, branching cracks.

Shapes are drawn as anti-aliased coverage maps (float32 in [0, 1], one value per
pixel) so that painters can blend them softly into a surface. Every random draw
comes from the caller's ``numpy.random.Generator``, which keeps images
reproducible from their seed.
"""

from __future__ import annotations

from math import ceil

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = [
    "FloatImage",
    "Points",
    "blob_outline",
    "blurred_noise",
    "coverage_of_polygons",
    "coverage_of_strokes",
    "crack_strokes",
    "curved_stroke",
    "random_centre",
    "smooth_field",
    "wandering_stroke",
]

FloatImage = NDArray[np.float32]
Points = NDArray[np.float64]

# cv2 draws with sub-pixel precision when coordinates are fixed-point with this many bits.
_SHIFT_BITS = 4
_FIXED_POINT = float(1 << _SHIFT_BITS)
# Wide blurs run on a grid reduced until the blur is this wide, then resized up.
_SIGMA_AFTER_REDUCTION_PX = 2.5


def random_centre(
    rng: np.random.Generator, height: int, width: int, margin: float = 0.15
) -> Points:
    """A point (x, y) inside the image, ``margin`` (a fraction of each side) from its edges."""
    x = rng.uniform(margin * width, (1.0 - margin) * width)
    y = rng.uniform(margin * height, (1.0 - margin) * height)
    return np.array([x, y], dtype=np.float64)


def blob_outline(
    rng: np.random.Generator,
    centre: Points,
    radius_px: float,
    *,
    irregularity: float = 0.15,
    elongation: float = 1.0,
    n_points: int = 64,
) -> Points:
    """A closed irregular outline: an ellipse whose radius wobbles with a few harmonics.

    Real stains and holes are never circles; low harmonics bend the outline,
    higher ones make it ragged.
    """
    angles = np.linspace(0.0, 2.0 * np.pi, n_points, endpoint=False)
    radius = np.ones_like(angles)
    for harmonic in range(2, 7):
        amplitude = rng.normal(0.0, irregularity / harmonic)
        radius += amplitude * np.cos(harmonic * angles + rng.uniform(0.0, 2.0 * np.pi))
    radius = np.clip(radius, 0.35, 1.8) * radius_px
    tilt = rng.uniform(0.0, np.pi)
    x = radius * np.cos(angles) * elongation
    y = radius * np.sin(angles) / elongation
    rotated_x = x * np.cos(tilt) - y * np.sin(tilt)
    rotated_y = x * np.sin(tilt) + y * np.cos(tilt)
    return np.stack([rotated_x + centre[0], rotated_y + centre[1]], axis=1)


def curved_stroke(
    rng: np.random.Generator, centre: Points, length_px: float, *, bend: float = 0.2
) -> Points:
    """A quadratic Bézier arc through ``centre``: the path of a scratch."""
    angle = rng.uniform(0.0, np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    start = centre - direction * length_px / 2.0
    end = centre + direction * length_px / 2.0
    control = centre + normal * rng.uniform(-bend, bend) * length_px
    t = np.linspace(0.0, 1.0, 64)[:, None]
    path: Points = (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end
    return path


def wandering_stroke(
    rng: np.random.Generator,
    start: Points,
    length_px: float,
    *,
    step_px: float,
    turn_rad: float,
    heading_rad: float | None = None,
    jitter_rad: float = 0.0,
) -> Points:
    """A random walk with momentum: the path of a fibre or one arm of a crack.

    ``turn_rad`` bends the course for good (a curling fibre); ``jitter_rad``
    only zigzags each step around it (a crack keeps its course but is jagged).
    """
    heading = rng.uniform(0.0, 2.0 * np.pi) if heading_rad is None else heading_rad
    n_steps = max(2, int(length_px / step_px))
    turns = np.cumsum(rng.normal(0.0, turn_rad, n_steps))
    headings = heading + turns + rng.normal(0.0, jitter_rad, n_steps)
    steps = np.stack([np.cos(headings), np.sin(headings)], axis=1) * step_px
    path: Points = np.vstack([start[None, :], start + np.cumsum(steps, axis=0)])
    return path


def crack_strokes(
    rng: np.random.Generator,
    start: Points,
    length_px: float,
    *,
    step_px: float,
    branch_probability: float = 0.05,
    max_depth: int = 2,
) -> list[tuple[Points, int]]:
    """A branching random walk; returns ``(path, depth)`` pairs, the trunk at depth 0."""
    strokes: list[tuple[Points, int]] = []
    pending: list[tuple[Points, float, float | None, int]] = [(start, length_px, None, 0)]
    while pending:
        origin, length, heading, depth = pending.pop()
        path = wandering_stroke(
            rng,
            origin,
            length,
            step_px=step_px,
            turn_rad=0.12,
            heading_rad=heading,
            jitter_rad=0.6,
        )
        strokes.append((path, depth))
        if depth >= max_depth:
            continue
        for index in range(1, len(path) - 2):
            if rng.random() >= branch_probability:
                continue
            delta = path[index + 1] - path[index]
            base = float(np.arctan2(delta[1], delta[0]))
            side = 1.0 if rng.random() < 0.5 else -1.0
            remaining = length * (1.0 - index / len(path))
            pending.append(
                (
                    path[index],
                    remaining * rng.uniform(0.3, 0.6),
                    base + side * rng.uniform(0.4, 1.1),
                    depth + 1,
                )
            )
    return strokes


def _fixed(points: Points) -> NDArray[np.int32]:
    return np.round(points * _FIXED_POINT).astype(np.int32)


def coverage_of_polygons(height: int, width: int, outlines: list[Points]) -> FloatImage:
    """Anti-aliased filled polygons as a coverage map in [0, 1]."""
    canvas = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(canvas, [_fixed(outline) for outline in outlines], 255, cv2.LINE_AA, _SHIFT_BITS)
    return (canvas.astype(np.float32) / 255.0).astype(np.float32)


def coverage_of_strokes(height: int, width: int, strokes: list[tuple[Points, int]]) -> FloatImage:
    """Anti-aliased open polylines as a coverage map; each stroke has its own thickness."""
    canvas = np.zeros((height, width), dtype=np.uint8)
    for path, thickness in strokes:
        cv2.polylines(
            canvas, [_fixed(path)], False, 255, max(1, thickness), cv2.LINE_AA, _SHIFT_BITS
        )
    return (canvas.astype(np.float32) / 255.0).astype(np.float32)


def _reduction(sigma_px: float) -> float:
    """How much a noise field may be shrunk before blurring: wide blurs need few samples."""
    return max(1.0, sigma_px / _SIGMA_AFTER_REDUCTION_PX)


def blurred_noise(
    rng: np.random.Generator, height: int, width: int, sigma_x_px: float, sigma_y_px: float
) -> FloatImage:
    """White noise blurred by a (possibly anisotropic) Gaussian, scaled to unit std.

    The building block of every procedural surface. Wide blurs are made on a
    reduced grid and resized up, which looks the same and is many times faster.
    """
    reduce_x, reduce_y = _reduction(sigma_x_px), _reduction(sigma_y_px)
    small_w, small_h = max(2, ceil(width / reduce_x) + 2), max(2, ceil(height / reduce_y) + 2)
    noise = rng.standard_normal((small_h, small_w), dtype=np.float32)
    blurred = cv2.GaussianBlur(
        noise,
        (0, 0),
        sigmaX=max(sigma_x_px / reduce_x, 0.3),
        sigmaY=max(sigma_y_px / reduce_y, 0.3),
        borderType=cv2.BORDER_REFLECT,
    )
    if (small_w, small_h) != (width, height):
        blurred = cv2.resize(blurred, (width, height), interpolation=cv2.INTER_CUBIC)
    field = np.asarray(blurred, dtype=np.float32)
    std = float(field.std())
    return (field / std if std > 0 else field).astype(np.float32)


def smooth_field(rng: np.random.Generator, height: int, width: int, sigma_px: float) -> FloatImage:
    """Isotropic blurred noise with unit std: mottling, uneven fading, cavity floors."""
    return blurred_noise(rng, height, width, sigma_px, sigma_px)

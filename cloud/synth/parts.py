"""One synthetic part: surface, optional defect, camera, as 8-bit pixels and a mask.

The dataset writer and the line video both build their images here, so a part
looks the same wherever it appears.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from cloud.errors import DatasetError
from cloud.synth.capture import capture, to_uint8
from cloud.synth.defects import Mask, paint_defect
from cloud.synth.shapes import FloatImage
from cloud.synth.textures import resolve_category

__all__ = [
    "MAX_SIDE_PX",
    "MIN_SIDE_PX",
    "SynthPart",
    "compose_part",
    "encode_png",
    "normalise_size",
    "render_part",
]

MIN_SIDE_PX = 32
MAX_SIDE_PX = 4096


@dataclass(frozen=True)
class SynthPart:
    """A captured part: ``image`` is uint8 ``(H, W)`` grey or ``(H, W, 3)`` RGB.

    ``mask`` (uint8 ``(H, W)``, 255 = defect) and ``defect_type`` are None for a good part.
    """

    image: NDArray[np.uint8]
    mask: Mask | None
    defect_type: str | None


def normalise_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """Turn ``256`` or ``(width, height)`` into ``(width, height)``, checking the bounds.

    Raises:
        DatasetError: a side below ``MIN_SIDE_PX`` or above ``MAX_SIDE_PX``.
    """
    width, height = (size, size) if isinstance(size, int) else size
    for side in (width, height):
        if not MIN_SIDE_PX <= int(side) <= MAX_SIDE_PX:
            msg = (
                f"image size {width}x{height}: each side must be {MIN_SIDE_PX}-{MAX_SIDE_PX} px; "
                "pass e.g. --size 256 or --size 320x240"
            )
            raise DatasetError(msg)
    return int(width), int(height)


def compose_part(
    category: str,
    rng: np.random.Generator,
    size: int | tuple[int, int],
    defect_type: str | None = None,
) -> tuple[FloatImage, Mask | None]:
    """Make a part's surface and, if asked, paint one defect on it (before the camera).

    Args:
        category: a name from ``CATEGORIES``.
        rng: the part's generator; the surface is drawn first, then the defect.
        size: ``256`` or ``(width, height)``.
        defect_type: one of ``DEFECT_TYPES``, or None for a good part.

    Returns:
        The scene, float32 ``(H, W, C)`` in [0, 1], and the mask (None if good).
    """
    width, height = normalise_size(size)
    kind = resolve_category(category)
    surface = kind.make_surface(rng, height, width)
    if defect_type is None:
        return surface, None
    region = kind.defect_region(surface) if kind.defect_region else None
    return paint_defect(surface, defect_type, rng, region)


def render_part(
    category: str,
    rng: np.random.Generator,
    size: int | tuple[int, int],
    defect_type: str | None = None,
) -> SynthPart:
    """Compose a part and capture it with the camera model (lighting, noise, 8 bits)."""
    scene, mask = compose_part(category, rng, size, defect_type)
    return SynthPart(image=to_uint8(capture(scene, rng)), mask=mask, defect_type=defect_type)


def encode_png(image: NDArray[np.uint8]) -> bytes:
    """PNG bytes of a grey ``(H, W)`` or RGB ``(H, W, 3)`` image (OpenCV stores BGR)."""
    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, buffer = cv2.imencode(".png", pixels)
    if not ok:
        msg = f"PNG encoder refused an image of shape {image.shape}; this is a bug in synth"
        raise DatasetError(msg)
    return bytes(buffer.tobytes())

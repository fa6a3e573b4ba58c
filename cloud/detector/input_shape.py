"""The model's input shape: a fixed pixel budget, shaped like the training images.

Squashing a 3:1 strip of sheet metal into a square throws away two thirds of
the resolution along its length, where a thin crack across it then vanishes.
Keeping the images' aspect ratio at the same pixel budget costs nothing at
the edge (latency follows the pixel count) and keeps defects the same size in
both directions.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

__all__ = ["MAX_ASPECT_RATIO", "SIDE_MULTIPLE", "model_input_shape"]

SIDE_MULTIPLE = 32  # the backbone downsamples by 16 and the patch grid by 8; 32 keeps both exact
MAX_ASPECT_RATIO = 4.0  # beyond this a strip is better cut into tiles than squeezed into one input


def _round_side(value: float) -> int:
    return max(SIDE_MULTIPLE, SIDE_MULTIPLE * round(value / SIDE_MULTIPLE))


def model_input_shape(image_sizes: Sequence[tuple[int, int]], side: int) -> tuple[int, int]:
    """(height, width) holding about ``side``² pixels, shaped like the images.

    Args:
        image_sizes: (height, width) of some training images; their median
            aspect ratio sets the shape, so a few odd images do not.
        side: the side of the square with the same pixel budget.

    Returns:
        Both sides multiples of 32; the aspect ratio is kept within 1:4.
    """
    if not image_sizes:
        return side, side
    aspect = statistics.median(width / height for height, width in image_sizes)
    aspect = min(max(aspect, 1.0 / MAX_ASPECT_RATIO), MAX_ASPECT_RATIO)
    width = _round_side(side * math.sqrt(aspect))
    height = _round_side(side / math.sqrt(aspect))
    return height, width

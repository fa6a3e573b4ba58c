"""The model's input shape follows the training images' aspect ratio at a fixed pixel budget."""

from __future__ import annotations

import pytest

from cloud.detector.input_shape import MAX_ASPECT_RATIO, SIDE_MULTIPLE, model_input_shape


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ([(1024, 1024), (900, 900)], (256, 256)),  # square stays square, whatever the size
        ([(300, 600)] * 3, (192, 352)),  # landscape 2:1
        ([(600, 300)] * 3, (352, 192)),  # portrait 1:2
        ([(100, 3000)], (128, 512)),  # a 30:1 strip is capped at 4:1
        ([], (256, 256)),  # nothing to go by: a square
    ],
)
def test_shape_keeps_the_pixel_budget_and_the_aspect_ratio(
    sizes: list[tuple[int, int]], expected: tuple[int, int]
) -> None:
    assert model_input_shape(sizes, 256) == expected


def test_shape_follows_the_median_image_not_an_odd_one() -> None:
    sizes = [(300, 600)] * 5 + [(1000, 100), (100, 1000)]
    assert model_input_shape(sizes, 256) == (192, 352)


@pytest.mark.parametrize("aspect", [0.2, 0.37, 0.8, 1.0, 1.33, 1.9, 3.1, 7.0])
@pytest.mark.parametrize("side", [64, 128, 256, 512])
def test_sides_are_multiples_of_32_within_the_budget(aspect: float, side: int) -> None:
    height, width = model_input_shape([(1000, round(1000 * aspect))], side)
    assert height % SIDE_MULTIPLE == 0 and width % SIDE_MULTIPLE == 0
    assert 1 / MAX_ASPECT_RATIO <= width / height <= MAX_ASPECT_RATIO
    assert 0.5 * side**2 <= height * width <= 1.6 * side**2

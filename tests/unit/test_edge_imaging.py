"""16-bit images come down to 8 bits without losing a 12-bit camera's grey levels."""

from __future__ import annotations

import cv2
import numpy as np

from edge.runtime.imaging import decode_image, to_bgr


def _png(pixels: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", pixels)
    assert ok
    return encoded.tobytes()


def test_twelve_bit_pixels_in_a_16_bit_file_keep_their_grey_levels() -> None:
    ramp = np.tile(np.arange(0, 4096, 16, dtype=np.uint16), (8, 1))  # 0..4080: 12-bit
    image = decode_image(_png(ramp))
    assert image.shape == (8, 256, 3) and image.dtype == np.uint8
    assert np.array_equal(image[..., 0], (ramp >> 4).astype(np.uint8))
    assert len(np.unique(image)) == 256  # not the 16 levels a plain >> 8 leaves


def test_full_range_16_bit_pixels_are_scaled_by_256() -> None:
    ramp = np.tile(np.arange(0, 65536, 256, dtype=np.uint16), (8, 1))
    image = decode_image(_png(ramp))
    assert np.array_equal(image[..., 0], (ramp >> 8).astype(np.uint8))


def test_grey_and_bgra_become_bgr() -> None:
    grey = np.full((4, 5), 77, dtype=np.uint8)
    assert np.array_equal(to_bgr(grey), np.full((4, 5, 3), 77, dtype=np.uint8))
    bgra = np.zeros((4, 5, 4), dtype=np.uint8)
    bgra[..., 2] = 200
    assert to_bgr(bgra)[..., 2].min() == 200 and to_bgr(bgra).shape == (4, 5, 3)

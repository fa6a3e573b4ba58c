"""16-bit images come down to 8 bits without losing a 12-bit camera's grey levels."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest

from edge.runtime.errors import ImageDecodeError, ImageTooLarge
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


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose SOF header is rewritten to claim width x height."""
    ok, encoded = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    assert ok
    data = bytearray(encoded.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 7] = height.to_bytes(2, "big")
    data[sof + 7 : sof + 9] = width.to_bytes(2, "big")
    return bytes(data)


def _bmp_claiming(width: int, height: int) -> bytes:
    ok, encoded = cv2.imencode(".bmp", np.full((4, 4, 3), 128, np.uint8))
    assert ok
    data = bytearray(encoded.tobytes())
    data[18:22] = width.to_bytes(4, "little")
    data[22:26] = height.to_bytes(4, "little", signed=True)
    return bytes(data)


def _ppm_claiming(width: int, height: int) -> bytes:
    return f"P6\n{width} {height}\n255\n".encode() + b"\0" * 64


@pytest.mark.parametrize("claiming", [_jpeg_claiming, _bmp_claiming, _ppm_claiming])
def test_a_header_claiming_a_huge_frame_is_refused_before_decoding(
    claiming: Callable[[int, int], bytes],
) -> None:
    bomb = claiming(12000, 12000)
    assert len(bomb) < 2000
    with pytest.raises(ImageTooLarge, match="12000x12000"):
        decode_image(bomb, max_pixels=25_000_000)


def test_bytes_no_decoder_can_size_are_refused() -> None:
    with pytest.raises(ImageDecodeError, match="send PNG, JPEG"):
        decode_image(b"\x00\x01 twelve bytes of nothing")

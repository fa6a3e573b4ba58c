"""Turn encoded bytes or raw pixels into the model's input: 3-channel BGR uint8, resized.

Decoding and resizing stay outside the graph (OpenCV does them faster than any
graph op and the camera already hands us decoded frames); everything after the
resize happens inside ``model.onnx``.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image as PilImage
from PIL import UnidentifiedImageError

from edge.runtime.errors import ImageDecodeError, ImageTooLarge

__all__ = ["ImageArray", "decode_image", "read_image", "resize_for_model", "to_bgr"]

ImageArray = npt.NDArray[np.uint8]

DEFAULT_MAX_PIXELS = 50_000_000


_TWELVE_BIT_LIMIT = 1 << 12


def _uint16_shift(image: npt.NDArray[np.uint16]) -> int:
    """Bits to drop from a 16-bit image to get 8.

    Industrial cameras often store 12-bit pixels (0-4095) in 16-bit files;
    dropping 8 bits from those would leave 16 grey levels and a black image. A
    16-bit image with no pixel at 4096 or above is taken as 12-bit: a true 16-bit
    image that dark (under 1/16 of full scale) is rare, and it then shows
    brighter than normal -- an alarm, never a miss.
    """
    return 4 if int(image.max(initial=0)) < _TWELVE_BIT_LIMIT else 8


def to_bgr(pixels: npt.NDArray[np.generic]) -> ImageArray:
    """Return a 3-channel BGR uint8 image from grey, BGR or BGRA pixels of any depth.

    Raises:
        ImageDecodeError: a shape that is not an image.
    """
    image = np.asarray(pixels)
    if image.dtype != np.uint8:
        if image.dtype == np.uint16:
            image = (image >> _uint16_shift(image)).astype(np.uint8)
        elif np.issubdtype(image.dtype, np.floating):
            image = np.clip(np.nan_to_num(image) * 255.0, 0, 255).astype(np.uint8)
        else:
            msg = f"image: pixel type {image.dtype} is not supported; send uint8 or uint16"
            raise ImageDecodeError(msg)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return cast(ImageArray, cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
    if image.ndim == 3 and image.shape[2] == 4:
        return cast(ImageArray, cv2.cvtColor(image, cv2.COLOR_BGRA2BGR))
    if image.ndim == 3 and image.shape[2] == 3:
        return np.ascontiguousarray(image)
    msg = f"image: shape {image.shape} is not grey (H, W), BGR (H, W, 3) or BGRA (H, W, 4)"
    raise ImageDecodeError(msg)


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageArray:
    """Decode PNG/JPEG/BMP/TIFF… bytes into BGR uint8.

    Raises:
        ImageDecodeError: empty bytes or bytes OpenCV cannot decode.
        ImageTooLarge: an image with more than ``max_pixels`` pixels.
    """
    if not data:
        msg = "image: no bytes received; send an encoded image (PNG, JPEG, BMP, TIFF)"
        raise ImageDecodeError(msg)
    _check_header_size(data, max_pixels)
    buffer = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        msg = f"image: {len(data)} bytes are not an image OpenCV can decode (PNG, JPEG, BMP, TIFF)"
        raise ImageDecodeError(msg)
    if image.shape[0] * image.shape[1] > max_pixels:
        msg = f"image: {image.shape[1]}x{image.shape[0]} is over the limit of {max_pixels} pixels"
        raise ImageTooLarge(msg)
    return to_bgr(image)


def _check_header_size(data: bytes, max_pixels: int) -> None:
    """Refuse an image whose header claims more than ``max_pixels``, before decoding.

    OpenCV allocates the full frame a header claims before it reads a pixel, so a
    few hundred bytes claiming 12000x12000 would cost a gigabyte. Pillow reads
    only the header here (every format it knows: PNG, JPEG, BMP, TIFF, WebP, PNM,
    GIF…); bytes it cannot size are refused rather than handed to a decoder blind.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PilImage.DecompressionBombWarning)
            with PilImage.open(io.BytesIO(data)) as header:
                width, height = header.size
                kind = header.format or "image"
    except PilImage.DecompressionBombError as exc:
        msg = f"image: the header claims over {max_pixels} pixels ({exc}); send a smaller image"
        raise ImageTooLarge(msg) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        msg = (
            f"image: {len(data)} bytes are not an image in a format we can size before "
            "decoding; send PNG, JPEG, BMP, TIFF or WebP"
        )
        raise ImageDecodeError(msg) from exc
    if width * height > max_pixels:
        msg = f"image: {kind} header says {width}x{height}, over the limit of {max_pixels} pixels"
        raise ImageTooLarge(msg)


def read_image(path: Path) -> ImageArray:
    """Read an image file into BGR uint8.

    Raises:
        ImageDecodeError: a file that is missing or not an image, named in the message.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        msg = f"image {path}: cannot read ({exc.strerror})"
        raise ImageDecodeError(msg) from exc
    try:
        return decode_image(data)
    except ImageDecodeError as exc:
        msg = f"image {path}: not an image OpenCV can decode; remove or replace the file"
        raise ImageDecodeError(msg) from exc


def resize_for_model(image: ImageArray, height: int, width: int) -> ImageArray:
    """Resize to the model's input size (bilinear; INTER_AREA when shrinking a lot)."""
    if image.shape[0] == height and image.shape[1] == width:
        return image
    shrinking = image.shape[0] > 2 * height or image.shape[1] > 2 * width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cast(ImageArray, cv2.resize(image, (width, height), interpolation=interpolation))

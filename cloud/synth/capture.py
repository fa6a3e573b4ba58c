"""The camera: uneven lighting, focus, sensor noise and 8-bit quantisation.

A detector that only ever saw pixel-identical good parts would alarm on every
real frame; these small, random changes between captures keep it honest.
Lighting is split from sensing so a line video can keep the lighting of one
part steady while each frame gets fresh sensor noise.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from cloud.synth.shapes import FloatImage

__all__ = ["capture", "light", "sense", "to_uint8"]


def light(image: FloatImage, rng: np.random.Generator) -> FloatImage:
    """Apply a random lighting gradient, vignetting, gain and offset.

    Args:
        image: float32 ``(H, W, C)`` in [0, 1].
        rng: the part's random generator.

    Returns:
        The lit image, float32 ``(H, W, C)``, not clipped.
    """
    height, width = image.shape[:2]
    y, x = np.mgrid[-1.0 : 1.0 : complex(0, height), -1.0 : 1.0 : complex(0, width)]
    direction = rng.uniform(0.0, 2.0 * np.pi)
    gradient = rng.uniform(0.0, 0.10) * (x * np.cos(direction) + y * np.sin(direction))
    centre_x, centre_y = rng.uniform(-0.3, 0.3, 2)
    vignette = -rng.uniform(0.0, 0.08) * ((x - centre_x) ** 2 + (y - centre_y) ** 2) / 2.0
    gain = rng.uniform(0.95, 1.05)
    offset = rng.uniform(-0.02, 0.02)
    shading = (gain * (1.0 + gradient + vignette)).astype(np.float32)[..., None]
    return np.asarray(image * shading + offset, dtype=np.float32)


def sense(image: FloatImage, rng: np.random.Generator) -> FloatImage:
    """Apply a slight random defocus and signal-dependent sensor noise.

    Args:
        image: float32 ``(H, W, C)``, the lit scene.
        rng: a generator for this capture.

    Returns:
        The captured image, float32 ``(H, W, C)`` clipped to [0, 1].
    """
    height, width, channels = image.shape
    sigma_px = rng.uniform(0.0, 0.7) * min(height, width) / 256.0
    if sigma_px > 0.3:
        blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma_px, borderType=cv2.BORDER_REFLECT)
        image = np.asarray(blurred, dtype=np.float32).reshape(height, width, channels)
    noise_level = rng.uniform(0.004, 0.012)
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    # Shot noise grows with brightness; read noise does not.
    noisy = image + noise * noise_level * (0.6 + 0.8 * np.clip(image, 0.0, 1.0))
    return np.clip(noisy, 0.0, 1.0).astype(np.float32)


def capture(image: FloatImage, rng: np.random.Generator) -> FloatImage:
    """Light and sense a surface in one go (one still image of one part)."""
    return sense(light(image, rng), rng)


def to_uint8(image: FloatImage) -> NDArray[np.uint8]:
    """Quantise to 8 bits: ``(H, W)`` for grey, ``(H, W, 3)`` RGB for colour."""
    quantised = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    if quantised.ndim == 3 and quantised.shape[2] == 1:
        grey: NDArray[np.uint8] = quantised[..., 0]
        return grey
    colour: NDArray[np.uint8] = quantised
    return colour

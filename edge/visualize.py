"""Pictures a person can read: the anomaly map as an 8-bit PNG, and an overlay.

The map is scaled over ``[0, 2 x threshold]``, so the threshold always sits at
mid-grey (128) whatever the model; a reviewer compares maps across models at a glance.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from edge.runtime.errors import ImageDecodeError
from edge.runtime.imaging import ImageArray

__all__ = ["anomaly_map_png", "anomaly_map_to_u8", "encode_png", "overlay_jpeg"]

_OVERLAY_ALPHA = 0.45


def anomaly_map_to_u8(anomaly_map: npt.NDArray[np.float32], threshold: float) -> ImageArray:
    """Scale a calibrated map to 0..255 over ``[0, 2 x threshold]`` (NaN -> 255)."""
    top = 2.0 * threshold if threshold > 0 else 1.0
    scaled = np.nan_to_num(np.asarray(anomaly_map, dtype=np.float32), nan=top) * (255.0 / top)
    clipped: ImageArray = np.clip(np.rint(scaled), 0.0, 255.0).astype(np.uint8)
    return clipped


def encode_png(image: ImageArray) -> bytes:
    """Encode an image losslessly (fast compression: the node encodes many)."""
    ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        msg = f"image: cannot encode shape {image.shape} as PNG"
        raise ImageDecodeError(msg)
    return encoded.tobytes()


def anomaly_map_png(anomaly_map: npt.NDArray[np.float32], threshold: float) -> bytes:
    """Return the map as an 8-bit grey PNG, threshold at 128."""
    return encode_png(anomaly_map_to_u8(anomaly_map, threshold))


def overlay_jpeg(
    image: ImageArray,
    anomaly_map: npt.NDArray[np.float32],
    threshold: float,
    *,
    quality: int = 85,
    max_side: int | None = None,
) -> bytes:
    """Blend a colour heat map over the image and return JPEG bytes.

    Args:
        image: the frame, BGR uint8, any size.
        anomaly_map: the model's map; resized to the image.
        threshold: the decision threshold, for the scale.
        quality: JPEG quality.
        max_side: shrink the result so its longer side is at most this (thumbnails).
    """
    height, width = image.shape[:2]
    grey = anomaly_map_to_u8(anomaly_map, threshold)
    heat = cv2.applyColorMap(
        cv2.resize(grey, (width, height), interpolation=cv2.INTER_LINEAR), cv2.COLORMAP_JET
    )
    blended = cv2.addWeighted(image, 1.0 - _OVERLAY_ALPHA, heat, _OVERLAY_ALPHA, 0.0)
    if max_side is not None and max(height, width) > max_side:
        scale = max_side / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        blended = cv2.resize(blended, size, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", blended, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        msg = f"image: cannot encode overlay of shape {blended.shape} as JPEG"
        raise ImageDecodeError(msg)
    return encoded.tobytes()

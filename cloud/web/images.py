"""Pictures from the sample store, found by sample or alert id, never by a path a user gives.

A file missing from the store (moved, pruned, a store mounted wrong) answers a
grey placeholder saying so, with status 200 so the page still lays out, and a
header that tells scripts what happened.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
from fastapi import Response

__all__ = ["MISSING_HEADER", "image_response", "overlay_response", "placeholder_response"]

logger = logging.getLogger(__name__)

MISSING_HEADER = "X-Linewatch-Image"
_OVERLAY_ALPHA = 0.45
_CACHE = "private, max-age=3600"  # content-addressed files never change
_PLACEHOLDER_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240" viewBox="0 0 320 240">'
    '<rect width="320" height="240" fill="#ddd"/>'
    '<text x="160" y="115" font-family="sans-serif" font-size="16" text-anchor="middle" '
    'fill="#555">image missing from the store</text>'
    '<text x="160" y="140" font-family="sans-serif" font-size="12" text-anchor="middle" '
    'fill="#777">{what}</text></svg>'
)
_MEDIA = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def placeholder_response(what: str) -> Response:
    """Return the 'image missing' picture."""
    body = _PLACEHOLDER_SVG.replace("{what}", what)
    return Response(body, media_type="image/svg+xml", headers={MISSING_HEADER: "missing"})


def _inside(root: Path, relative: str | None) -> Path | None:
    """The stored file, if ``relative`` names one inside the store (rows are trusted, still)."""
    if not relative:
        return None
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        return None
    return path


def image_response(root: Path, relative: str | None, what: str) -> Response:
    """Return a stored image, or the placeholder when it is not in the store."""
    path = _inside(root, relative)
    if path is None:
        logger.warning("image missing from the store what=%s path=%s", what, relative)
        return placeholder_response(what)
    media = _MEDIA.get(path.suffix.lower(), "application/octet-stream")
    return Response(path.read_bytes(), media_type=media, headers={"Cache-Control": _CACHE})


def overlay_response(root: Path, image: str | None, heatmap: str | None, what: str) -> Response:
    """Return the frame with its anomaly map blended on top in colour (JPEG)."""
    image_path, heatmap_path = _inside(root, image), _inside(root, heatmap)
    if image_path is None or heatmap_path is None:
        return placeholder_response(what)
    frame = cv2.imdecode(np.fromfile(image_path, np.uint8), cv2.IMREAD_COLOR)
    grey_map = cv2.imdecode(np.fromfile(heatmap_path, np.uint8), cv2.IMREAD_GRAYSCALE)
    if frame is None or grey_map is None:
        logger.warning("image unreadable what=%s", what)
        return placeholder_response(what)
    heat = cv2.applyColorMap(
        cv2.resize(grey_map, (frame.shape[1], frame.shape[0])), cv2.COLORMAP_JET
    )
    blended = cv2.addWeighted(frame, 1.0 - _OVERLAY_ALPHA, heat, _OVERLAY_ALPHA, 0.0)
    ok, encoded = cv2.imencode(".jpg", blended, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        return placeholder_response(what)
    return Response(encoded.tobytes(), media_type="image/jpeg", headers={"Cache-Control": _CACHE})
